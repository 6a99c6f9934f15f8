#!/usr/bin/env node
// Node `ws` ECHO server peer, for testing OUR client against a real server (same contract as py_server.py).
const USAGE = `Usage:
  node node_server.mjs PORT_FILE [--deflate] [--window-bits N] [--no-context-takeover {none,server,client,both}]
                                 [--require-deflate] [--timeout SECONDS]

  PORT_FILE            once listening on 127.0.0.1:<ephemeral port>, the port number (decimal, followed by
                       a newline) is written here atomically (temp file + rename): poll until it exists
  --deflate            accept permessage-deflate offers (ws perMessageDeflate, threshold 0 so every
                       message is compressed); off: offers are declined
  --window-bits N      8..15, implies --deflate: require and answer client_max_window_bits=N (ws declines
                       an offer without client_max_window_bits then) and use server_max_window_bits=max(N, 9)
  --no-context-takeover WHICH
                       implies --deflate: force server_/client_no_context_takeover in the response
  --require-deflate    exit 1 if the client's handshake did not end with permessage-deflate in use
  --timeout SECONDS    give up (exit 1) if no client has come and gone within this time (default 60)

Behaviour: echoes every text message as text and every binary message as binary (fragmented messages
are reassembled and echoed whole), answers pings, and exits after its FIRST client disconnects.
Output (stdout): "LISTENING <port>", "CONNECTED path=<path> extensions=<response header or none>"
(or "HANDSHAKE-REJECTED error=<...>" and exit 1 when the client's handshake was refused),
"CLOSED code=<n> reason=<text> messages=<count>", then "OK <summary>" and exit 0 when the client closed
with a close frame whose code is 1000 or 1001 and no protocol error happened; otherwise
"FAIL <step>: <detail>" and exit 1 (also on timeout). Usage error: exit 2.
`;

import { createRequire } from 'node:module';
import fs from 'node:fs';
import { out, fail, usage, startWatchdog, parseArgs, describeDeflate } from './common.mjs';

const require = createRequire(import.meta.url);
const { WebSocketServer } = require('ws');

const args = parseArgs(process.argv.slice(2), USAGE, {
  flags: ['--require-deflate'],
  valued: ['--timeout'],
});
if (args.positional.length !== 1) usage(USAGE, 'expected exactly one PORT_FILE');
const portFile = args.positional[0];
const timeout = Number(args.opts.timeout ?? 60);
const deflate = args.deflate;
if (args.opts['require-deflate'] && !deflate) usage(USAGE, '--require-deflate needs --deflate');
startWatchdog(timeout, 'node_server (waiting for a client to connect and disconnect)');

let perMessageDeflate = false;
if (deflate) {
  // Only set the *NoContextTakeover keys when true: an explicit `false` makes ws refuse offers that
  // ask for no_context_takeover (HTTP 400) instead of merely not asking for it.
  perMessageDeflate = { threshold: 0 };
  if (deflate.serverNoContextTakeover) perMessageDeflate.serverNoContextTakeover = true;
  if (deflate.clientNoContextTakeover) perMessageDeflate.clientNoContextTakeover = true;
  if (deflate.windowBits !== null) {
    perMessageDeflate.serverMaxWindowBits = Math.max(deflate.windowBits, 9);
    perMessageDeflate.clientMaxWindowBits = deflate.windowBits;
  }
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: true,
});

let responseExtensions = null;
let served = false;
wss.on('headers', (headers) => {
  const h = headers.find((l) => l.toLowerCase().startsWith('sec-websocket-extensions:'));
  responseExtensions = h ? h.slice(h.indexOf(':') + 1).trim() : null;
});

wss.on('listening', () => {
  const port = wss.address().port;
  const tmp = `${portFile}.tmp${process.pid}`;
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, portFile);
  out(`LISTENING ${port}`);
});

wss.on('error', (err) => fail('listen', err.message));

// A handshake that ws refuses (bad request, bad extension offer, ...): nothing left to do.
wss.on('wsClientError', (err, socket) => {
  out(`HANDSHAKE-REJECTED error=${JSON.stringify(err.message)}`);
  // With a listener attached ws leaves the answer to us: send what ws would have sent, then stop.
  const body = err.message;
  socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => fail('connect', `handshake rejected: ${err.message}`));
  setTimeout(() => fail('connect', `handshake rejected: ${err.message}`), 1000);
});

wss.on('connection', (ws, req) => {
  if (served) {
    ws.terminate();
    return;
  }
  served = true;
  const negotiated = ws.extensions.includes('permessage-deflate');
  out(`CONNECTED path=${req.url} extensions=${responseExtensions ?? 'none'}`);
  let messages = 0;
  let error = null;
  ws.on('message', (data, isBinary) => {
    messages++;
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', (err) => {
    // ws reports the peer's protocol violations here (and then closes with 1002/1007/1009).
    error = error ?? `${err.code ?? ''} ${err.message}`.trim();
  });
  ws.on('close', (code, reasonBuf) => {
    const reason = reasonBuf.toString('utf8');
    out(`CLOSED code=${code} reason=${reason} messages=${messages}`);
    if (error) fail('echo', `protocol error from the client: ${error}`);
    if (code === 1006) fail('close', 'client disconnected without a close frame');
    if (code !== 1000 && code !== 1001) fail('close', `client closed with code ${code} reason ${JSON.stringify(reason)}`);
    if (args.opts['require-deflate'] && !negotiated) fail('deflate-negotiated', 'client did not negotiate permessage-deflate');
    out(`OK node_server ${describeDeflate(deflate)} negotiated=${negotiated ? 'yes' : 'no'} messages=${messages}`);
    process.exit(0);
  });
});
