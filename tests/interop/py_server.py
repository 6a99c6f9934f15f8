#!/usr/bin/env python3
"""Python `websockets` ECHO server peer, for testing OUR client against a real server.

Usage:
  py_server.py PORT_FILE [--deflate] [--window-bits N] [--no-context-takeover {none,server,client,both}]
               [--require-deflate] [--timeout SECONDS]

  PORT_FILE            once listening on 127.0.0.1:<ephemeral port>, the port number (decimal, followed by
                       a newline) is written here atomically (temp file + rename): poll until it exists
  --deflate            accept permessage-deflate offers (off: offers are declined) with the library's
                       defaults, as `compression="deflate"` deploys them: server_max_window_bits=12, and
                       client_max_window_bits=12 when the client offers client_max_window_bits
  --window-bits N      8..15, implies --deflate: answer with client_max_window_bits=N when the client
                       offers client_max_window_bits, and use server_max_window_bits=max(N, 9) (the
                       websockets library cannot compress with an 8-bit window)
  --no-context-takeover WHICH
                       implies --deflate: force server_/client_no_context_takeover in the response
  --require-deflate    exit 1 if the client's handshake did not end with permessage-deflate in use
  --timeout SECONDS    give up (exit 1) if no client has come and gone within this time (default 60)

Behaviour: echoes every text message as text and every binary message as binary (fragmented messages
are reassembled and echoed whole), answers pings, and exits after its FIRST client disconnects.
Output (stdout): "LISTENING <port>", "CONNECTED path=<path> extensions=<response header or none>"
(or "HANDSHAKE-REJECTED status=<n> body=<...>" and exit 1 when the client's handshake was refused),
"CLOSED code=<n> reason=<text> messages=<count>", then "OK <summary>" and exit 0 when the client closed
with a close frame whose code is 1000 or 1001 and no protocol error happened; otherwise
"FAIL <step>: <detail>" and exit 1 (also on timeout). Usage error: exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from interop_common import (
    DEFAULT_SERVER_TIMEOUT,
    add_deflate_args,
    deflate_settings,
    describe_deflate,
    fail,
    out,
    start_watchdog,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("port_file")
    add_deflate_args(p)
    p.add_argument("--require-deflate", action="store_true")
    p.add_argument("--timeout", type=float, default=DEFAULT_SERVER_TIMEOUT)
    args = p.parse_args()
    deflate = deflate_settings(args, p)
    if args.require_deflate and deflate is None:
        p.error("--require-deflate needs --deflate")

    from websockets.exceptions import ConnectionClosed
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.sync.server import serve

    kwargs = dict(max_size=64 * 1024 * 1024, ping_interval=None, close_timeout=5, open_timeout=10)
    kwargs["compression"] = None
    if deflate is not None:
        wb = deflate["window_bits"]
        kwargs["extensions"] = [
            ServerPerMessageDeflateFactory(
                # Without --window-bits: the library's own defaults (what `compression="deflate"`
                # deploys), i.e. 12-bit windows both ways.
                server_max_window_bits=max(wb, 9) if wb is not None else 12,
                client_max_window_bits=wb if wb is not None else 12,
                server_no_context_takeover=deflate["server_no_context_takeover"],
                client_no_context_takeover=deflate["client_no_context_takeover"],
                compress_settings={"memLevel": 5},
            )
        ]

    start_watchdog(args.timeout, "py_server (waiting for a client to connect and disconnect)")
    result: dict = {}
    done = threading.Event()

    def handler(ws) -> None:
        if done.is_set():
            return
        path = ws.request.path if ws.request else "?"
        ext = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
        out(f"CONNECTED path={path} extensions={ext if ext else 'none'}")
        result["deflate"] = any(e.name == "permessage-deflate" for e in ws.protocol.extensions)
        count = 0
        try:
            while True:
                msg = ws.recv()  # str for text, bytes for binary
                count += 1
                ws.send(msg)
        except ConnectionClosed as e:
            result["rcvd"] = e.rcvd
            result["sent"] = e.sent
        except Exception as e:  # noqa: BLE001 - report anything as a failure
            result["error"] = f"{type(e).__name__}: {e}"
        result["messages"] = count
        done.set()

    def process_response(ws, request, response):
        # Called for every handshake response, also for rejections (400, 426, ...): a one-shot server
        # whose client was refused has nothing left to do.
        if response.status_code != 101 and not done.is_set():
            out(f"HANDSHAKE-REJECTED status={response.status_code} body={response.body[:200]!r}")
            result["rejected"] = response.status_code
            done.set()
        return None

    with serve(handler, "127.0.0.1", 0, process_response=process_response, **kwargs) as server:
        port = server.socket.getsockname()[1]
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
        out(f"LISTENING {port}")
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        done.wait()
        server.shutdown()

    if "rejected" in result:
        fail("connect", f"handshake rejected with HTTP {result['rejected']}")
    rcvd = result.get("rcvd")
    if "error" in result:
        fail("echo", result["error"])
    code = rcvd.code if rcvd else 1006
    reason = rcvd.reason if rcvd else ""
    out(f"CLOSED code={code} reason={reason} messages={result['messages']}")
    if rcvd is None:
        sent = result.get("sent")
        detail = f"server sent close {sent.code} {sent.reason!r}" if sent else "no close frame either way"
        fail("close", f"client disconnected without a close frame ({detail})")
    if code not in (1000, 1001):
        fail("close", f"client closed with code {code} reason {reason!r}")
    if args.require_deflate and not result.get("deflate"):
        fail("deflate-negotiated", "client did not negotiate permessage-deflate")
    out(f"OK py_server {describe_deflate(deflate)} negotiated={'yes' if result.get('deflate') else 'no'} "
        f"messages={result['messages']}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
