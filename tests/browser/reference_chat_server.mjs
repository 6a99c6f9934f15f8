#!/usr/bin/env node
// Reference implementation of the chat PAGE CONTRACT in chat_test.mjs, on Node's http + `ws`.
// It exists to self-test the browser harness (scripts/test.sh runs chat_test.mjs against it) and as
// an example for the Rust chat example's page; it is not the product.
//
// Usage: node reference_chat_server.mjs PORT_FILE [--timeout SECONDS] [--unsafe-html]
//   Serves the page at http://127.0.0.1:<port>/ and the WebSocket at ws://127.0.0.1:<port>/ws,
//   writes the port to PORT_FILE (atomically) once listening, prints "LISTENING <port>", and exits 0
//   after SECONDS (default 60) or on SIGTERM/SIGINT.
//   --unsafe-html inserts chat text with innerHTML: a deliberately broken page, for checking that
//   chat_test.mjs catches it.
// Wire format (JSON text messages), page -> server: {"type":"name","name"}, {"type":"join","room"},
// {"type":"say","text"}; server -> page: {"type":"msg","from","text"}, {"type":"system","text"}.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.WS_INTEROP_NODE_DIR || path.resolve(here, '../interop');
const { WebSocketServer } = createRequire(path.join(nodeDir, 'package.json'))('ws');

const argv = process.argv.slice(2);
let timeout = 60;
let unsafe = false;
const pos = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--timeout' && i + 1 < argv.length) timeout = Number(argv[++i]);
  else if (argv[i] === '--unsafe-html') unsafe = true;
  else pos.push(argv[i]);
}
if (pos.length !== 1) {
  process.stderr.write('Usage: node reference_chat_server.mjs PORT_FILE [--timeout SECONDS] [--unsafe-html]\n');
  process.exit(2);
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ws chat (reference)</title>
<style>
  body { font-family: "DejaVu Sans", sans-serif; margin: 1.5em; max-width: 40em; }
  #status { font-weight: bold; } .row { margin: .4em 0; }
  #messages { border: 1px solid #999; min-height: 8em; padding: .5em 2em; }
  li.system { color: #666; font-style: italic; }
</style></head>
<body>
<h1>Chat</h1>
<div class="row">Status: <span id="status">connecting</span></div>
<div class="row"><input id="name" placeholder="name"> <button id="join-name">Set name</button></div>
<div class="row"><input id="room" placeholder="room"> <button id="join-room">Join room</button></div>
<div class="row"><input id="message" placeholder="message"> <button id="send">Send</button></div>
<ul id="messages"></ul>
<script>
  const UNSAFE = ${unsafe ? 'true' : 'false'};
  const $ = (id) => document.getElementById(id);
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
  ws.onopen = () => { $('status').textContent = 'connected'; };
  ws.onclose = () => { $('status').textContent = 'disconnected'; };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    const li = document.createElement('li');
    if (m.type === 'system') { li.className = 'system'; li.textContent = m.text; }
    else if (UNSAFE) li.innerHTML = m.from + ': ' + m.text;
    else li.textContent = m.from + ': ' + m.text;
    $('messages').appendChild(li);
  };
  const send = (o) => ws.send(JSON.stringify(o));
  $('join-name').onclick = () => send({ type: 'name', name: $('name').value });
  $('join-room').onclick = () => send({ type: 'join', room: $('room').value });
  $('send').onclick = () => { send({ type: 'say', text: $('message').value }); $('message').value = ''; };
</script>
</body></html>
`;

const server = http.createServer((req, res) => {
  if (req.url === '/' || req.url === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else if (req.url === '/favicon.ico') {
    res.writeHead(204);
    res.end();
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }
});
const wss = new WebSocketServer({ server, path: '/ws' });
const users = new Map(); // ws -> { name, room }

function toRoom(room, obj) {
  const data = JSON.stringify(obj);
  for (const [peer, u] of users) if (u.room === room && peer.readyState === 1) peer.send(data);
}

wss.on('connection', (ws) => {
  const me = { name: 'anonymous', room: null };
  users.set(ws, me);
  ws.on('message', (raw) => {
    let m;
    try {
      m = JSON.parse(raw.toString('utf8'));
    } catch {
      return;
    }
    if (m.type === 'name' && typeof m.name === 'string' && m.name) me.name = m.name.slice(0, 40);
    else if (m.type === 'join' && typeof m.room === 'string' && m.room) {
      if (me.room) toRoom(me.room, { type: 'system', text: `${me.name} left ${me.room}` });
      me.room = m.room;
      toRoom(me.room, { type: 'system', text: `${me.name} joined ${me.room}` });
    } else if (m.type === 'say' && typeof m.text === 'string' && me.room) {
      toRoom(me.room, { type: 'msg', from: me.name, text: m.text });
    }
  });
  ws.on('close', () => {
    users.delete(ws);
    if (me.room) toRoom(me.room, { type: 'system', text: `${me.name} left` });
  });
});

server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const tmp = `${pos[0]}.tmp${process.pid}`;
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, pos[0]);
  process.stdout.write(`LISTENING ${port}\n`);
});
const stop = () => process.exit(0);
setTimeout(stop, timeout * 1000);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
