#!/usr/bin/env node
// Node `ws` client peer: runs a fixed script against an ECHO server (same script as py_client.py).
const USAGE = `Usage:
  node node_client.mjs URL [--deflate] [--window-bits N] [--no-context-takeover {none,server,client,both}]
                           [--deflate-optional] [--timeout SECONDS]

  URL                  ws://127.0.0.1:PORT/path of an echo server (text echoed as text, binary as binary)
  --deflate            offer permessage-deflate (ws perMessageDeflate, threshold 0 so every message is
                       compressed) and FAIL unless the server accepts it
  --window-bits N      8..15, implies --deflate: offer server_max_window_bits=N and
                       client_max_window_bits=max(N, 9) (zlib cannot compress with an 8-bit window)
  --no-context-takeover WHICH
                       implies --deflate: offer server_no_context_takeover and/or client_no_context_takeover
  --deflate-optional   with the deflate options: a server that declines the offer is fine
  --timeout SECONDS    hard limit for the whole run (default 20)

The script (each step prints "STEP <name> ok"):
  connect, [deflate-negotiated], text "hello", binary bytes 0..255, empty text "",
  100 KiB text of "abc"..., 60000-byte binary (a 20000-byte pseudo-random block 3 times: catches a
  deflate window larger than negotiated), fragmented text "frag"+"mented "+"message" (3 frames, send with fin:false),
  ping with payload -> matching pong, non-ASCII text "κόσμε €", close 1000 "bye" -> the server's close
  frame has code 1000 and the server closes the TCP connection promptly.
Output: last line "OK <summary>", exit 0; "FAIL <step>: <detail>", exit 1; usage error, exit 2.
`;

import { createRequire } from 'node:module';
import { out, fail, usage, startWatchdog, parseArgs, describeDeflate } from './common.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const STEP_TIMEOUT_MS = 10_000;
const LARGE_TEXT = 'abc'.repeat(40000).slice(0, 100 * 1024);
const FRAGMENTS = ['frag', 'mented ', 'message'];
const NON_ASCII = 'κόσμε €';
const PING_PAYLOAD = Buffer.from('ping-payload');
// 20000 pseudo-random bytes repeated 3 times: the only matches are 20000 bytes back, so a deflate
// peer that agreed to a window smaller than 32 KiB but compresses with a 32 KiB window produces
// back-references that zlib rejects here ("invalid distance too far back").
const LONG_DISTANCE = (() => {
  const block = Buffer.alloc(20000);
  let x = 0x9e3779b9;
  for (let i = 0; i < block.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; // xorshift32
    block[i] = x & 0xff;
  }
  return Buffer.concat([block, block, block]);
})();

const args = parseArgs(process.argv.slice(2), USAGE, {
  flags: ['--deflate-optional'],
  valued: ['--timeout'],
});
if (args.positional.length !== 1) usage(USAGE, 'expected exactly one URL');
const url = args.positional[0];
if (!/^ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+(\/|$)/.test(url)) {
  usage(USAGE, 'URL must be ws:// on a loopback address');
}
const timeout = Number(args.opts.timeout ?? 20);
const deflate = args.deflate;
startWatchdog(timeout, 'node_client');

let perMessageDeflate = false;
if (deflate) {
  // Only set the *NoContextTakeover keys when true: an explicit `false` makes ws refuse offers that
  // ask for no_context_takeover (HTTP 400) instead of merely not asking for it.
  perMessageDeflate = { threshold: 0 };
  if (deflate.serverNoContextTakeover) perMessageDeflate.serverNoContextTakeover = true;
  if (deflate.clientNoContextTakeover) perMessageDeflate.clientNoContextTakeover = true;
  if (deflate.windowBits !== null) {
    perMessageDeflate.serverMaxWindowBits = deflate.windowBits;
    perMessageDeflate.clientMaxWindowBits = Math.max(deflate.windowBits, 9);
  }
}

// ---- a small queue of incoming events, so the script reads like sequential code
const queue = [];
let waiter = null;
function push(ev) {
  if (waiter) {
    const w = waiter;
    waiter = null;
    w(ev);
  } else queue.push(ev);
}
function next(step, kinds) {
  return new Promise((resolve) => {
    const take = (ev) => {
      clearTimeout(timer);
      if (!kinds.includes(ev.kind)) {
        fail(step, `expected ${kinds.join('/')}, got ${ev.kind}${ev.detail ? ' ' + ev.detail : ''}`);
      }
      resolve(ev);
    };
    const timer = setTimeout(() => fail(step, `nothing received within ${STEP_TIMEOUT_MS / 1000} s`), STEP_TIMEOUT_MS);
    if (queue.length) take(queue.shift());
    else waiter = take;
  });
}

function show(v) {
  const s = typeof v === 'string' ? v : v.toString('hex');
  return JSON.stringify(s.length > 60 ? s.slice(0, 60) + '...' : s);
}

function checkEcho(step, ev, want) {
  const wantBinary = Buffer.isBuffer(want);
  if (ev.isBinary !== wantBinary) {
    fail(step, `expected a ${wantBinary ? 'binary' : 'text'} message, got ${ev.isBinary ? 'binary' : 'text'}`);
  }
  const got = wantBinary ? ev.data : ev.data.toString('utf8');
  const same = wantBinary ? Buffer.compare(got, want) === 0 : got === want;
  if (!same) fail(step, `echo mismatch: got ${got.length} units ${show(got)}, want ${want.length} units ${show(want)}`);
  out(`STEP ${step} ok len=${want.length}`);
}

const t0 = performance.now();
let responseExtensions = null;
const ws = new WebSocket(url, {
  perMessageDeflate,
  handshakeTimeout: STEP_TIMEOUT_MS,
  maxPayload: 64 * 1024 * 1024,
});
ws.on('upgrade', (res) => {
  responseExtensions = res.headers['sec-websocket-extensions'] ?? null;
});
ws.on('unexpected-response', (_req, res) => fail('connect', `handshake rejected: HTTP ${res.statusCode}`));
ws.on('open', () => push({ kind: 'open' }));
ws.on('message', (data, isBinary) => push({ kind: 'message', data, isBinary }));
ws.on('pong', (data) => push({ kind: 'pong', data }));
ws.on('error', (err) => push({ kind: 'error', detail: `${err.code ?? ''} ${err.message}` }));
ws.on('close', (code, reason) => push({ kind: 'close', code, reason: reason.toString('utf8'), detail: `code=${code}` }));

async function run() {
  let ev = await next('connect', ['open']);
  out(`CONNECTED ${url} status=101`);
  out(`EXTENSIONS ${responseExtensions ?? 'none'}`);
  out('STEP connect ok');
  if (deflate) {
    if (ws.extensions.includes('permessage-deflate')) out(`STEP deflate-negotiated ok ${responseExtensions}`);
    else if (!args.opts['deflate-optional']) {
      fail('deflate-negotiated', `server did not accept permessage-deflate (header: ${responseExtensions})`);
    } else out('STEP deflate-declined ok');
  }

  ws.send('hello');
  checkEcho('text', await next('text', ['message']), 'hello');

  const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  ws.send(bin);
  checkEcho('binary', await next('binary', ['message']), bin);

  ws.send('');
  checkEcho('empty-text', await next('empty-text', ['message']), '');

  ws.send(LARGE_TEXT);
  checkEcho('large-text', await next('large-text', ['message']), LARGE_TEXT);

  ws.send(LONG_DISTANCE);
  checkEcho('long-distance-binary', await next('long-distance-binary', ['message']), LONG_DISTANCE);

  ws.send(FRAGMENTS[0], { fin: false });
  ws.send(FRAGMENTS[1], { fin: false });
  ws.send(FRAGMENTS[2], { fin: true });
  checkEcho('fragmented-text', await next('fragmented-text', ['message']), FRAGMENTS.join(''));

  ws.ping(PING_PAYLOAD);
  ev = await next('ping-pong', ['pong']);
  if (Buffer.compare(ev.data, PING_PAYLOAD) !== 0) {
    fail('ping-pong', `pong payload ${show(ev.data)}, want ${show(PING_PAYLOAD)}`);
  }
  out('STEP ping-pong ok');

  ws.send(NON_ASCII);
  checkEcho('non-ascii-text', await next('non-ascii-text', ['message']), NON_ASCII);

  const tc = performance.now();
  ws.close(1000, 'bye');
  // 'close' fires once the TCP connection is closed; its code is the one in the server's close frame
  // (1005 = close frame without code, 1006 = no close frame).
  ev = await next('close', ['close']);
  const elapsed = (performance.now() - tc) / 1000;
  out(`CLOSED code=${ev.code} reason=${ev.reason}`);
  if (ev.code !== 1000) fail('close', `server answered close with code ${ev.code} (reason ${JSON.stringify(ev.reason)}), want 1000`);
  if (elapsed >= 5) fail('close', `server did not close the TCP connection after the close handshake (${elapsed.toFixed(1)} s)`);
  out(`STEP close ok code=1000 elapsed=${elapsed.toFixed(3)}s`);
  out(`OK node_client lib=ws ${describeDeflate(deflate)} steps=all elapsed=${((performance.now() - t0) / 1000).toFixed(3)}s`);
  process.exit(0);
}

run().catch((e) => fail('internal', e && e.stack ? e.stack : String(e)));
