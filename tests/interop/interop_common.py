"""Shared helpers for the Python interop peers (py_client.py, py_server.py).

Output contract shared by every peer script (Python and Node):
  * progress lines on stdout, one per check: ``STEP <name> ok [detail]``
  * informational lines: ``CONNECTED ...``, ``EXTENSIONS <header value or none>``, ``LISTENING <port>``,
    ``CLOSED code=<n> reason=<text>``
  * the last line on success: ``OK <summary>`` and exit status 0
  * on any mismatch, error or timeout: ``FAIL <step>: <detail>`` (stdout) and exit status 1
  * bad command line: usage on stderr and exit status 2
Only loopback addresses are used; every script stops on its own (watchdog timeout).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

DEFAULT_CLIENT_TIMEOUT = 20.0
DEFAULT_SERVER_TIMEOUT = 60.0


def out(line: str) -> None:
    print(line, flush=True)


def fail(step: str, detail: str) -> "NoReturn":  # noqa: F821 (string annotation only)
    out(f"FAIL {step}: {detail}")
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: background threads of the websockets library must not keep us alive.
    os._exit(1)


def start_watchdog(seconds: float, what: str) -> None:
    """Hard stop: whatever happens, the process exits after `seconds`."""

    def expire() -> None:
        fail("timeout", f"{what} did not finish within {seconds:g} s")

    t = threading.Timer(seconds, expire)
    t.daemon = True
    t.start()


def add_deflate_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("permessage-deflate (RFC 7692)")
    g.add_argument("--deflate", action="store_true", help="offer/accept permessage-deflate")
    g.add_argument(
        "--window-bits",
        type=int,
        metavar="N",
        help="8..15: max LZ77 window asked of the peer (implies --deflate); see each script for details",
    )
    g.add_argument(
        "--no-context-takeover",
        choices=["none", "server", "client", "both"],
        default=None,
        help="ask for server_/client_no_context_takeover (implies --deflate)",
    )


def deflate_settings(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict | None:
    """Return None when deflate is off, else a dict of the parsed parameters."""
    if args.window_bits is not None and not 8 <= args.window_bits <= 15:
        p.error("--window-bits must be between 8 and 15")
    enabled = args.deflate or args.window_bits is not None or args.no_context_takeover is not None
    if not enabled:
        return None
    nct = args.no_context_takeover or "none"
    return {
        "window_bits": args.window_bits,
        "server_no_context_takeover": nct in ("server", "both"),
        "client_no_context_takeover": nct in ("client", "both"),
    }


def describe_deflate(s: dict | None) -> str:
    if s is None:
        return "deflate=off"
    parts = ["deflate=on"]
    if s["window_bits"] is not None:
        parts.append(f"window_bits={s['window_bits']}")
    if s["server_no_context_takeover"]:
        parts.append("server_no_context_takeover")
    if s["client_no_context_takeover"]:
        parts.append("client_no_context_takeover")
    return ",".join(parts)
