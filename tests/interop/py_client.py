#!/usr/bin/env python3
"""Python WebSocket client peer: runs a fixed script against an ECHO server.

Usage:
  py_client.py URL [--deflate] [--window-bits N] [--no-context-takeover {none,server,client,both}]
               [--deflate-optional] [--websocket-client] [--timeout SECONDS]

  URL                  ws://127.0.0.1:PORT/path of an echo server (text echoed as text, binary as binary)
  --deflate            offer permessage-deflate and FAIL unless the server accepts it
  --window-bits N      8..15, implies --deflate: offer server_max_window_bits=N and
                       client_max_window_bits=max(N, 9) (the websockets library cannot compress with a
                       window of 8 bits, so its own window is at least 9)
  --no-context-takeover WHICH
                       implies --deflate: offer server_no_context_takeover and/or client_no_context_takeover
  --deflate-optional   with the deflate options: a server that declines the offer is fine (prints
                       "EXTENSIONS none"); the library still fails the handshake if the server accepts
                       with parameters that contradict the offer
  --websocket-client   use the `websocket-client` package instead of `websockets` (no deflate support:
                       combining it with deflate options is a usage error)
  --timeout SECONDS    hard limit for the whole run (default 20)

The script (each step prints "STEP <name> ok"):
  connect, [deflate-negotiated], text "hello", binary bytes(range(256)), empty text "",
  100 KiB text of "abc"..., 60000-byte binary (a 20000-byte pseudo-random block 3 times: catches a
  deflate window larger than negotiated), fragmented text "frag"+"mented "+"message" (3 frames),
  ping with payload -> matching pong, non-ASCII text "κόσμε €", close 1000 "bye" -> the server's close
  frame has code 1000 and the server closes the TCP connection promptly.
Output: see interop_common.py. Last line "OK <summary>", exit 0; "FAIL <step>: <detail>", exit 1;
usage error, exit 2.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time

from interop_common import (
    DEFAULT_CLIENT_TIMEOUT,
    add_deflate_args,
    deflate_settings,
    describe_deflate,
    fail,
    out,
    start_watchdog,
)

STEP_TIMEOUT = 10.0  # seconds, for any single receive/handshake
LARGE_TEXT = ("abc" * 40000)[: 100 * 1024]
FRAGMENTS = ["frag", "mented ", "message"]
NON_ASCII = "κόσμε €"
PING_PAYLOAD = b"ping-payload"
# 20000 pseudo-random bytes repeated 3 times: the only matches are 20000 bytes back, so a deflate
# peer that agreed to a window smaller than 32 KiB but compresses with a 32 KiB window produces
# back-references that zlib rejects here ("invalid distance too far back").
LONG_DISTANCE = __import__("random").Random(7).randbytes(20000) * 3


def check_echo(step: str, got, want) -> None:
    if type(got) is not type(want):
        fail(step, f"expected a {type(want).__name__} message, got {type(got).__name__}")
    if got != want:
        g = got if len(got) <= 60 else got[:60]
        w = want if len(want) <= 60 else want[:60]
        fail(step, f"echo mismatch: got {len(got)} units {g!r}..., want {len(want)} units {w!r}...")
    out(f"STEP {step} ok len={len(want)}")


# --------------------------------------------------------------------------- websockets (asyncio-free sync API)
def run_websockets(url: str, deflate: dict | None, optional: bool) -> str:
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.sync.client import connect

    kwargs = dict(open_timeout=STEP_TIMEOUT, close_timeout=5, max_size=16 * 1024 * 1024, ping_interval=None,
                  legacy=True)
    if deflate is None:
        kwargs["compression"] = None
    else:
        wb = deflate["window_bits"]
        kwargs["compression"] = None
        kwargs["extensions"] = [
            ClientPerMessageDeflateFactory(
                server_max_window_bits=wb,
                client_max_window_bits=max(wb, 9) if wb is not None else True,
                server_no_context_takeover=deflate["server_no_context_takeover"],
                client_no_context_takeover=deflate["client_no_context_takeover"],
                compress_settings={"memLevel": 5},
            )
        ]

    try:
        ws = connect(url, **kwargs)
    except InvalidStatus as e:
        fail("connect", f"handshake rejected: HTTP {e.response.status_code}")
    except InvalidHandshake as e:
        fail("connect", f"invalid handshake: {type(e).__name__}: {e}")
    except (OSError, TimeoutError) as e:
        fail("connect", f"{type(e).__name__}: {e}")

    ext = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
    out(f"CONNECTED {url} status={ws.response.status_code if ws.response else '?'}")
    out(f"EXTENSIONS {ext if ext else 'none'}")
    out("STEP connect ok")
    if deflate is not None:
        negotiated = [e.name for e in ws.protocol.extensions]
        if "permessage-deflate" in negotiated:
            out(f"STEP deflate-negotiated ok {ext}")
        elif not optional:
            fail("deflate-negotiated", f"server did not accept permessage-deflate (header: {ext!r})")
        else:
            out("STEP deflate-declined ok")

    step = "?"
    try:
        step = "text"
        ws.send("hello")
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), "hello")

        step = "binary"
        data = bytes(range(256))
        ws.send(data)
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), data)

        step = "empty-text"
        ws.send("")
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), "")

        step = "large-text"
        ws.send(LARGE_TEXT)
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), LARGE_TEXT)

        step = "long-distance-binary"
        ws.send(LONG_DISTANCE)
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), LONG_DISTANCE)

        step = "fragmented-text"
        ws.send(iter(FRAGMENTS))  # one frame per item: text, continuation, continuation(fin)
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), "".join(FRAGMENTS))

        step = "ping-pong"
        if not ws.ping(PING_PAYLOAD).wait(STEP_TIMEOUT):
            fail(step, f"no pong for ping {PING_PAYLOAD!r} within {STEP_TIMEOUT:g} s")
        out(f"STEP {step} ok")

        step = "non-ascii-text"
        ws.send(NON_ASCII)
        check_echo(step, ws.recv(timeout=STEP_TIMEOUT), NON_ASCII)

        step = "close"
        t0 = time.monotonic()
        ws.close(1000, "bye")
        elapsed = time.monotonic() - t0
    except TimeoutError:
        fail(step, f"no echo within {STEP_TIMEOUT:g} s")
    except ConnectionClosed as e:
        fail(step, f"connection closed unexpectedly: rcvd={e.rcvd} sent={e.sent}")

    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        fail("close", f"no close frame from the server (close_code={ws.close_code})")
    out(f"CLOSED code={rcvd.code} reason={rcvd.reason}")
    if rcvd.code != 1000:
        fail("close", f"server answered close with code {rcvd.code} (reason {rcvd.reason!r}), want 1000")
    # websockets waits up to close_timeout (5 s) for the server to close TCP after the handshake.
    if elapsed >= 4.5:
        fail("close", f"server did not close the TCP connection after the close handshake ({elapsed:.1f} s)")
    out(f"STEP close ok code=1000 elapsed={elapsed:.3f}s")
    return "websockets"


# --------------------------------------------------------------------------- websocket-client
def run_websocket_client(url: str) -> str:
    import websocket
    from websocket import ABNF

    try:
        ws = websocket.create_connection(url, timeout=STEP_TIMEOUT, enable_multithread=False)
    except websocket.WebSocketBadStatusException as e:
        fail("connect", f"handshake rejected: HTTP {e.status_code}")
    except (websocket.WebSocketException, OSError) as e:
        fail("connect", f"{type(e).__name__}: {e}")
    ext = (ws.getheaders() or {}).get("sec-websocket-extensions")
    out(f"CONNECTED {url} status={ws.getstatus()}")
    out(f"EXTENSIONS {ext if ext else 'none'}")
    out("STEP connect ok")
    if ext:
        fail("connect", f"server accepted an extension that was not offered: {ext!r}")

    def recv_message(step: str):
        opcode, frame = ws.recv_data_frame(control_frame=False)
        if opcode == ABNF.OPCODE_TEXT:
            return frame.data.decode("utf-8")
        if opcode == ABNF.OPCODE_BINARY:
            return bytes(frame.data)
        if opcode == ABNF.OPCODE_CLOSE:
            fail(step, f"server closed the connection: {bytes(frame.data)!r}")
        fail(step, f"unexpected opcode {opcode}")

    step = "?"
    try:
        step = "text"
        ws.send("hello")
        check_echo(step, recv_message(step), "hello")

        step = "binary"
        data = bytes(range(256))
        ws.send_binary(data)
        check_echo(step, recv_message(step), data)

        step = "empty-text"
        ws.send("")
        check_echo(step, recv_message(step), "")

        step = "large-text"
        ws.send(LARGE_TEXT)
        check_echo(step, recv_message(step), LARGE_TEXT)

        step = "long-distance-binary"
        ws.send_binary(LONG_DISTANCE)
        check_echo(step, recv_message(step), LONG_DISTANCE)

        step = "fragmented-text"
        ws.send_frame(ABNF.create_frame(FRAGMENTS[0], ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(ABNF.create_frame(FRAGMENTS[1].encode(), ABNF.OPCODE_CONT, fin=0))
        ws.send_frame(ABNF.create_frame(FRAGMENTS[2].encode(), ABNF.OPCODE_CONT, fin=1))
        check_echo(step, recv_message(step), "".join(FRAGMENTS))

        step = "ping-pong"
        ws.ping(PING_PAYLOAD)
        while True:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == ABNF.OPCODE_PONG:
                break
            if opcode != ABNF.OPCODE_PING:
                fail(step, f"expected a pong, got opcode {opcode}")
        if bytes(frame.data) != PING_PAYLOAD:
            fail(step, f"pong payload {bytes(frame.data)!r}, want {PING_PAYLOAD!r}")
        out(f"STEP {step} ok")

        step = "non-ascii-text"
        ws.send(NON_ASCII)
        check_echo(step, recv_message(step), NON_ASCII)

        step = "close"
        t0 = time.monotonic()
        ws.send_close(1000, b"bye")
        # Read raw frames: recv_data_frame() would answer the server's close with a second close frame.
        while True:
            frame = ws.recv_frame()
            if frame.opcode == ABNF.OPCODE_CLOSE:
                break
            if frame.opcode not in (ABNF.OPCODE_PING, ABNF.OPCODE_PONG):
                fail(step, f"unexpected frame opcode {frame.opcode} after sending close")
        payload = bytes(frame.data)
        if len(payload) < 2:
            fail(step, f"server close frame has no status code: {payload!r}")
        code = struct.unpack("!H", payload[:2])[0]
        reason = payload[2:].decode("utf-8", "replace")
        out(f"CLOSED code={code} reason={reason}")
        if code != 1000:
            fail(step, f"server answered close with code {code} (reason {reason!r}), want 1000")
        # After the close handshake the server must close the TCP connection.
        ws.sock.settimeout(5)
        try:
            rest = ws.sock.recv(1)
        except socket.timeout:
            fail(step, "server did not close the TCP connection within 5 s of the close handshake")
        except OSError:
            rest = b""  # reset after close is acceptable
        if rest:
            fail(step, f"data after the close frame: {rest!r}")
        elapsed = time.monotonic() - t0
        ws.shutdown()
    except websocket.WebSocketTimeoutException:
        fail(step, f"nothing received within {STEP_TIMEOUT:g} s")
    except websocket.WebSocketConnectionClosedException as e:
        fail(step, f"connection closed unexpectedly: {e}")
    except websocket.WebSocketException as e:
        fail(step, f"{type(e).__name__}: {e}")
    except OSError as e:
        fail(step, f"{type(e).__name__}: {e}")
    out(f"STEP close ok code=1000 elapsed={elapsed:.3f}s")
    return "websocket-client"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    add_deflate_args(p)
    p.add_argument("--deflate-optional", action="store_true")
    p.add_argument("--websocket-client", action="store_true")
    p.add_argument("--timeout", type=float, default=DEFAULT_CLIENT_TIMEOUT)
    args = p.parse_args()
    deflate = deflate_settings(args, p)
    if args.websocket_client and deflate is not None:
        p.error("websocket-client does not implement permessage-deflate; drop the deflate options")
    if not (args.url.startswith("ws://127.0.0.1:") or args.url.startswith("ws://localhost:")
            or args.url.startswith("ws://[::1]:")):
        p.error("URL must be ws:// on a loopback address")

    start_watchdog(args.timeout, "py_client")
    t0 = time.monotonic()
    if args.websocket_client:
        lib = run_websocket_client(args.url)
    else:
        lib = run_websockets(args.url, deflate, args.deflate_optional)
    out(f"OK py_client lib={lib} {describe_deflate(deflate)} steps=all elapsed={time.monotonic() - t0:.3f}s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
