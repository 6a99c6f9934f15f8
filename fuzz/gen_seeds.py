#!/usr/bin/env python3
"""Writes the seed corpora of the ws-proto fuzz targets into fuzz/corpus/<target>/.

Run from anywhere: `python3 fuzz/gen_seeds.py`. The seeds are committed; rerun after changing
an input layout (see the layout notes in each target and in src/lib.rs::run_stream).
"""
import base64
import hashlib
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
M64 = (1 << 64) - 1


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


# ---- the client's handshake key for CLIENT_SEED = [0; 32] (xoshiro256++, see rng.rs) --------

class Rng:
    def __init__(self, seed: bytes):
        s = [struct.unpack("<Q", seed[i * 8:i * 8 + 8])[0] for i in range(4)]
        if s == [0, 0, 0, 0]:
            s = [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 1]
        self.s = s

    def next_u64(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        result = (rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def nonce(self):
        return struct.pack("<Q", self.next_u64()) + struct.pack("<Q", self.next_u64())


CLIENT_KEY = base64.b64encode(Rng(bytes(32)).nonce())

# ---- frames ----------------------------------------------------------------------------------

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if masked:
        return h + MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))
    return h + payload


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


HELLO_DEFLATE = bytes.fromhex("f248cdc9c90700")          # RFC 7692 §7.2.3.1
HELLO_SHARED = bytes.fromhex("f200110000")               # §7.2.3.2, second "Hello"
HELLO_STORED = bytes.fromhex("000500faff48656c6c6f00")   # §7.2.3.3
HELLO_BFINAL = bytes.fromhex("f348cdc9c9070000")         # §7.2.3.4
HELLO_TWO = bytes.fromhex("f24805000000ffffcac9c90700")  # §7.2.3.5


def deflate_raw(data, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    z = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert z.endswith(b"\x00\x00\xff\xff")
    return z[:-4]


def frame_set(masked):
    """(name, bytes, needs_deflate) frame sequences, masked for a server's input."""
    f = lambda *a, **k: frame(*a, masked=masked, **k)
    return [
        ("text", f(1, b"Hello"), False),
        ("binary", f(2, bytes(range(256))), False),
        ("binary16", f(2, b"\xab" * 300), False),
        ("ping", f(9, b"ping!") + f(1, b"after ping"), False),
        ("pong", f(10, b"pong"), False),
        ("close", f(8, close_payload(1000, b"bye")), False),
        ("close_empty", f(8), False),
        ("close_4000", f(8, close_payload(4000, "réason".encode())), False),
        ("fragmented", f(1, b"Hel", fin=False) + f(9, b"x") + f(0, b"l", fin=False) + f(0, b"o"), False),
        ("fragmented_bin", f(2, b"\x00\x01", fin=False) + f(0, b"\x02", fin=True), False),
        ("utf8_split", f(1, "é€".encode()[:3], fin=False) + f(0, "é€".encode()[3:]), False),
        ("many", b"".join(f(1, b"m%d" % i) for i in range(10)) + f(8, close_payload(1001)), False),
        ("compressed", f(1, HELLO_DEFLATE, rsv=4), True),
        ("compressed_takeover", f(1, HELLO_DEFLATE, rsv=4) + f(1, HELLO_SHARED, rsv=4), True),
        ("compressed_stored", f(1, HELLO_STORED, rsv=4), True),
        ("compressed_bfinal", f(1, HELLO_BFINAL, rsv=4), True),
        ("compressed_two_blocks", f(1, HELLO_TWO, rsv=4), True),
        ("compressed_fragmented", f(1, HELLO_DEFLATE[:3], rsv=4, fin=False) + f(0, HELLO_DEFLATE[3:]), True),
        ("compressed_big", f(2, deflate_raw(b"abcdefgh" * 4000), rsv=4), True),
        ("compressed_then_plain", f(1, HELLO_DEFLATE, rsv=4) + f(1, b"plain"), True),
    ]


# ---- stream targets --------------------------------------------------------------------------
# knobs: k0 (bit0 from_upgraded, bit1 streaming, bit2 deflate, bit3 drop, bit4 no auto pong,
# bit5 keepalive, bit6/7 no_context_takeover), k1 (frame/message size nibbles), k2 (window
# bits), k3 (handshake bytes/headers); then n and n schedule bytes.
BIG = 0xEE      # 1 MiB frames and messages
HS = 0xFA       # 4096 head bytes, 60 fields


def stream_seed(k0, body, k1=BIG, k2=0x77, k3=HS, sched=b""):
    return bytes([k0, k1, k2, k3, len(sched)]) + sched + body


def req(lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


KEY = b"dGhlIHNhbXBsZSBub25jZQ=="

REQUESTS = {
    "chrome": req([
        "GET /chat?room=1 HTTP/1.1", "Host: localhost:9001", "Connection: Upgrade",
        "Pragma: no-cache", "Cache-Control: no-cache",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
        "Upgrade: websocket", "Origin: http://localhost:9001", "Sec-WebSocket-Version: 13",
        "Accept-Encoding: gzip, deflate, br", "Accept-Language: en-US,en;q=0.9",
        "Sec-WebSocket-Key: " + KEY.decode(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    ]),
    "firefox": req([
        "GET /socket HTTP/1.1", "Host: example.com", "User-Agent: Mozilla/5.0 Firefox/121.0",
        "Accept: */*", "Accept-Language: en-US,en;q=0.5", "Accept-Encoding: gzip, deflate",
        "Sec-WebSocket-Version: 13", "Origin: https://example.com",
        "Sec-WebSocket-Protocol: chat, superchat",
        "Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
        "Connection: keep-alive, Upgrade", "Sec-Fetch-Dest: empty", "Sec-Fetch-Mode: websocket",
        "Pragma: no-cache", "Cache-Control: no-cache", "Upgrade: websocket",
    ]),
    "curl": req([
        "GET / HTTP/1.1", "Host: 127.0.0.1:8080", "User-Agent: curl/8.5.0", "Accept: */*",
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + KEY.decode(),
    ]),
    "python_websockets": req([
        "GET /ws HTTP/1.1", "Host: localhost:8765", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: " + KEY.decode(), "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; client_max_window_bits=12, permessage-deflate; client_max_window_bits",
        "User-Agent: Python/3.11 websockets/12.0",
    ]),
    "nctx": req([
        "GET / HTTP/1.1", "Host: h", "Upgrade: WebSocket", "Connection: upgrade",
        "Sec-WebSocket-Key: " + KEY.decode(), "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame",
    ]),
    "plain_get": req([
        "GET /index.html HTTP/1.1", "Host: localhost", "Accept: text/html",
    ]),
    "bad_version": req([
        "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: " + KEY.decode(), "Sec-WebSocket-Version: 8",
    ]),
    "post_upgrade": req([
        "POST / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: " + KEY.decode(), "Sec-WebSocket-Version: 13",
    ]),
}


def gen_server_stream():
    frames = frame_set(masked=True)
    for name, r in REQUESTS.items():
        out("server_stream", "hs_" + name, stream_seed(0x04, r))
    # Handshakes followed by frames (pipelined), with and without deflate offered.
    chrome = REQUESTS["chrome"]
    for name, body, dfl in frames:
        out("server_stream", "hs_chrome_" + name, stream_seed(0x04 if dfl else 0x00, chrome + body))
    # Trickled handshake: 1-byte chunks for the first 64 bytes.
    out("server_stream", "hs_trickle", stream_seed(0x00, REQUESTS["curl"] + frame(1, b"hi"), sched=bytes([0] * 64)))
    # From upgraded: every frame set, plain and with deflate agreed; some in streaming mode.
    for name, body, dfl in frames:
        out("server_stream", "up_" + name, stream_seed(0x05 if dfl else 0x01, body))
        out("server_stream", "upstream_" + name, stream_seed(0x07 if dfl else 0x03, body, sched=bytes([0x00, 0x02, 0x05, 0xC0, 0x80])))
    # Small limits, keepalive and timers.
    out("server_stream", "up_limits", stream_seed(0x01, frame(2, b"x" * 300), k1=0x55))
    out("server_stream", "up_keepalive", stream_seed(0x21, frame(9, b"") + frame(1, b"a"), sched=bytes([0x05, 0x80, 0x80, 0x80, 0xC0])))
    out("server_stream", "up_eof", stream_seed(0x01, frame(1, b"a"), sched=bytes([0x07, 0xE0])))
    # A message that predicts the next, then a read planned for it and aborted while it runs.
    three = frame(2, b"a" * 10) + frame(2, b"b" * 10) + frame(2, b"c" * 10)
    out("server_stream", "up_predicted_abort", stream_seed(0x01, three, sched=bytes([0x0F, 0xE2, 0x0F])))
    # A large frame (past the pool's threshold under fuzzing) whose rest is read straight into a
    # recycled buffer (k3's top bit puts one in the pool), from payload offset 5: the move into
    # place must unmask with the key in phase.
    out("server_stream", "up_direct_phase", stream_seed(0x01, frame(2, bytes(range(200)) * 3), sched=bytes([0x0C, 0x1D, 0x7F])))


RESPONSE_101 = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: %s\r\n") 


def gen_client_stream():
    frames = frame_set(masked=False)
    acc = accept(CLIENT_KEY).decode()
    ok = (RESPONSE_101 % acc + "\r\n").encode()
    ok_deflate = (RESPONSE_101 % acc + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n").encode()
    ok_deflate_params = (RESPONSE_101 % acc + "Sec-WebSocket-Extensions: permessage-deflate; "
                         "server_no_context_takeover; client_max_window_bits=10\r\n\r\n").encode()
    out("client_stream", "hs_ok", stream_seed(0x00, ok))
    out("client_stream", "hs_ok_deflate", stream_seed(0x04, ok_deflate))
    out("client_stream", "hs_ok_deflate_params", stream_seed(0x84, ok_deflate_params, k2=0xF7))
    out("client_stream", "hs_bad_accept", stream_seed(0x00, (RESPONSE_101 % accept(KEY).decode() + "\r\n").encode()))
    out("client_stream", "hs_400", stream_seed(0x00, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad"))
    out("client_stream", "hs_426", stream_seed(0x00, b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n"))
    for name, body, dfl in frames:
        out("client_stream", "hs_" + name, stream_seed(0x04 if dfl else 0x00, (ok_deflate if dfl else ok) + body))
        out("client_stream", "up_" + name, stream_seed(0x05 if dfl else 0x01, body))
        out("client_stream", "upstream_" + name, stream_seed(0x07 if dfl else 0x03, body, sched=bytes([0x00, 0x02, 0x05, 0xC0, 0x80])))
    out("client_stream", "up_keepalive", stream_seed(0x21, frame(9, b"", masked=False), sched=bytes([0x01, 0x80, 0x80, 0xC0])))


# ---- handshake parsers -----------------------------------------------------------------------

def gen_handshake():
    for name, r in REQUESTS.items():
        out("handshake_request", name, bytes([0x00, 0x10, 64, 0]) + r + frame(1, b"after"))
        out("handshake_request", name + "_chunked", bytes([0x00, 0x10, 64, 4, 0, 1, 7, 30]) + r)
    out("handshake_request", "tiny_cap", bytes([40, 0, 64, 0]) + REQUESTS["curl"])
    out("handshake_request", "few_fields", bytes([0x00, 0x10, 3, 0]) + REQUESTS["chrome"])
    acc = accept(KEY).decode()
    responses = {
        "ok": (RESPONSE_101 % acc + "\r\n").encode(),
        "ok_proto": (RESPONSE_101 % acc + "Sec-WebSocket-Protocol: chat\r\n\r\n").encode(),
        "ok_deflate": (RESPONSE_101 % acc + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n").encode(),
        "bad_accept": (RESPONSE_101 % "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" + "\r\n").encode(),
        "no_upgrade": ("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode(),
        "s400": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "http10": ("HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode(),
    }
    for name, r in responses.items():
        out("handshake_response", name, bytes([0x00, 0x10, 64, 0x03, 0]) + r + frame(1, b"x", masked=False))
        out("handshake_response", name + "_chunked", bytes([0x00, 0x10, 64, 0x01, 3, 0, 5, 11]) + r)


# ---- extensions ------------------------------------------------------------------------------

def gen_extensions():
    offers = [
        b"permessage-deflate",
        b"permessage-deflate; client_max_window_bits",
        b"permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
        b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        b'permessage-deflate; client_max_window_bits="10"',
        b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
        b"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
        b"permessage-deflate; server_max_window_bits=16",
        b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        b"permessage-deflate; unknown=1",
        b"foo\npermessage-deflate;client_max_window_bits=9",
    ]
    for i, o in enumerate(offers):
        out("extensions", "offer%02d" % i, bytes([0, 0, 0x10, 0xff]) + o)
        out("extensions", "offer%02d_cfg" % i, bytes([0x1a, 0x2b, 0x0e, 0x11]) + o)


# ---- inflate ---------------------------------------------------------------------------------
# k, w, limit lo, limit hi, n, sched: 0xxxxxxx decompress x+1 bytes, 10xxxxxx finish,
# 11xxxxxx round trip (x+1)*4 bytes.

def gen_inflate():
    lim = struct.pack("<H", 4096)
    out("inflate", "hello", bytes([0, 0xFF]) + lim + bytes([2, 6, 0x80]) + HELLO_DEFLATE)
    out("inflate", "hello_takeover", bytes([0, 0xFF]) + lim + bytes([4, 6, 0x80, 4, 0x80]) + HELLO_DEFLATE + HELLO_SHARED)
    out("inflate", "stored", bytes([1, 0xFF]) + lim + bytes([2, len(HELLO_STORED) - 1, 0x80]) + HELLO_STORED)
    out("inflate", "bfinal", bytes([0, 0xFF]) + lim + bytes([2, len(HELLO_BFINAL) - 1, 0x80]) + HELLO_BFINAL)
    out("inflate", "two_blocks", bytes([0, 0xFF]) + lim + bytes([2, len(HELLO_TWO) - 1, 0x80]) + HELLO_TWO)
    out("inflate", "split", bytes([0, 0xFF]) + lim + bytes([3, 0, 2, 0x80]) + HELLO_DEFLATE)
    bomb = deflate_raw(b"\x00" * (1 << 20))
    out("inflate", "bomb", bytes([0, 0xFF]) + struct.pack("<H", 1000) + bytes([0]) + bomb)
    out("inflate", "bomb_big_limit", bytes([0, 0xFF]) + struct.pack("<H", 0x8000 | 1000) + bytes([0]) + bomb)
    text = b"The quick brown fox jumps over the lazy dog. " * 20
    out("inflate", "roundtrip", bytes([0x08, 0x9A]) + lim + bytes([3, 0xC0 | 20, 0xC0 | 40, 0xC5]) + text)
    out("inflate", "window9", bytes([0x06, 0x11]) + lim + bytes([1, 0xFF]) + text)


# ---- frame_header ----------------------------------------------------------------------------

def gen_frame_header():
    hs = [
        bytes([0x81, 0x05]), bytes([0x81, 0x85]) + MASK, bytes([0x82, 0x7E, 0x01, 0x00]),
        bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]) + MASK, bytes([0x89, 0x00]),
        bytes([0x08, 0x7E, 0x00, 0x05]), bytes([0xC1, 0x07]), bytes([0x8A, 0x80]) + MASK,
        bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1]), bytes([0x83, 0x00]),
    ]
    for i, h in enumerate(hs):
        out("frame_header", "h%02d" % i, h)


if __name__ == "__main__":
    gen_server_stream()
    gen_client_stream()
    gen_handshake()
    gen_extensions()
    gen_inflate()
    gen_frame_header()
    print("client key for CLIENT_SEED:", CLIENT_KEY.decode())
