#!/usr/bin/env node
// Headless Chromium end-to-end test of the chat example, driven by playwright-core.
//
// ---------------------------------------------------------------------------------------------------
// PAGE CONTRACT (what the chat example's HTML page must provide; the ids are the interface):
//   #name       <input>   the user's display name
//   #join-name  <button>  sets the name typed in #name
//   #room       <input>   a room name
//   #join-room  <button>  joins the room typed in #room (becomes the "current room")
//   #message    <input>   a chat message
//   #send       <button>  sends #message to the current room
//   #messages   <ul>/<ol> the log: every entry (chat message or system notice) is one <li>
//                         chat messages show the sender's text as TEXT (textContent, never innerHTML:
//                         "<b>bold</b>" must appear literally, with no <b> element created)
//                         joins and leaves are <li class="system"> whose text contains the user's name
//                         and the word "joined" or "left" (e.g. "bob joined rust", "alice left")
//   #status     any       its text is exactly "connected" (surrounding whitespace ignored) while the
//                         WebSocket is open
// Everyone in a room, the joiner included, sees "<name> joined" when someone joins it (A sees its own
// "alice joined", then "bob joined"), and everyone in a room sees "<name> left" when a member's
// connection goes away (page closed). Text matching is case-insensitive and substring-based.
// ---------------------------------------------------------------------------------------------------
//
// The test: two pages (separate browser contexts) open URL and wait for #status "connected"; A sets
// name "alice", B sets "bob"; A joins room "rust" and waits for its own "alice joined", then B joins
// "rust" and A waits for "bob joined" (so B is in the room before A speaks); A sends "hello from alice" and B must show it; A sends "<b>bold</b>" and B must show it
// literally with no <b> element in #messages (on either page); page A is closed and B must show an
// li.system containing "alice" and "left"; then B is screenshotted to SCREENSHOT_PATH. Every wait is a
// playwright wait with a 10 s timeout (no sleeps).
const USAGE = `Usage: node chat_test.mjs URL SCREENSHOT_PATH

  URL               http://127.0.0.1:PORT/... of the chat page (loopback only)
  SCREENSHOT_PATH   PNG of page B at the end (also written, best effort, when the test fails)

Output: "STEP <name> ok" per check, then "OK chat_test screenshot=<path>" and exit 0;
"FAIL <step>: <detail>" (plus page B's #messages text and browser console errors) and exit 1,
also when the whole run exceeds 90 s; usage error: exit 2.
Environment: WS_CHROMIUM (default /usr/bin/chromium), WS_INTEROP_NODE_DIR (where playwright-core is).
`;

import { out, usage, startWatchdog, checkLoopbackHttpUrl, launchChromium } from './browser_common.mjs';

const WAIT_MS = 10_000;
const argv = process.argv.slice(2);
if (argv.includes('-h') || argv.includes('--help')) usage(USAGE);
if (argv.length !== 2 || argv.some((a) => a.startsWith('--'))) usage(USAGE, 'expected URL and SCREENSHOT_PATH');
const [url, shot] = argv;
checkLoopbackHttpUrl(url, USAGE);
startWatchdog(90, 'chat_test');

const consoleErrors = [];
let step = 'launch';
const browser = await launchChromium();
out(`STEP launch ok version=${browser.version()}`);

async function openUser(label) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => consoleErrors.push(`${label}: pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${label}: console.error: ${m.text()}`);
  });
  const resp = await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
  if (!resp || !resp.ok()) throw new Error(`GET ${url}: HTTP ${resp ? resp.status() : 'no response'}`);
  return { context, page, label };
}

async function waitConnected(u) {
  await u.page.locator('#status').filter({ hasText: /^\s*connected\s*$/ }).waitFor({ timeout: WAIT_MS });
}

async function setName(u, name) {
  await u.page.locator('#name').fill(name);
  await u.page.locator('#join-name').click();
}

async function joinRoom(u, room) {
  await u.page.locator('#room').fill(room);
  await u.page.locator('#join-room').click();
}

async function send(u, text) {
  await u.page.locator('#message').fill(text);
  await u.page.locator('#send').click();
}

// An <li> in #messages whose text contains every string in `parts` (literal substrings).
function entry(u, parts, cls = '') {
  let loc = u.page.locator(`#messages li${cls}`);
  for (const p of parts) loc = loc.filter({ hasText: p });
  return loc.first();
}

async function waitEntry(u, parts, cls = '') {
  await entry(u, parts, cls).waitFor({ state: 'attached', timeout: WAIT_MS });
}

let a;
let b;
let code = 0;
try {
  step = 'open-pages';
  a = await openUser('alice');
  b = await openUser('bob');
  out('STEP open-pages ok');

  step = 'status-connected';
  await waitConnected(a);
  await waitConnected(b);
  out('STEP status-connected ok');

  step = 'names';
  await setName(a, 'alice');
  await setName(b, 'bob');
  out('STEP names ok');

  step = 'join-room';
  await joinRoom(a, 'rust');
  await waitEntry(a, ['alice', 'joined'], '.system'); // A's own join is echoed: A is in the room
  await joinRoom(b, 'rust');
  await waitEntry(a, ['bob', 'joined'], '.system'); // B is in the room before A speaks
  out('STEP join-room ok');

  step = 'message-delivered';
  await send(a, 'hello from alice');
  await waitEntry(b, ['hello from alice']);
  out('STEP message-delivered ok');

  step = 'html-escaped';
  await send(a, '<b>bold</b>');
  await waitEntry(b, ['bold']);
  const texts = await b.page.locator('#messages li').filter({ hasText: 'bold' }).allTextContents();
  if (!texts.some((t) => t.includes('<b>bold</b>'))) {
    throw new Error(`bob's entry shows ${JSON.stringify(texts)}, want the literal text "<b>bold</b>"`);
  }
  for (const u of [a, b]) {
    const n = await u.page.locator('#messages b').count();
    if (n !== 0) throw new Error(`${u.label}'s #messages contains ${n} <b> element(s): message text was inserted as HTML`);
  }
  out('STEP html-escaped ok');

  step = 'leave-notice';
  await a.context.close(); // closes page A: its WebSocket goes away
  a = null;
  await waitEntry(b, ['alice', 'left'], '.system');
  out('STEP leave-notice ok');

  step = 'screenshot';
  await b.page.screenshot({ path: shot, fullPage: true });
  out(`STEP screenshot ok ${shot}`);
  out(`OK chat_test screenshot=${shot}`);
} catch (e) {
  code = 1;
  out(`FAIL ${step}: ${e.message.split('\n')[0]}`);
  if (b) {
    const text = await b.page.locator('#messages').innerText({ timeout: 1000 }).catch(() => '(no #messages)');
    const status = await b.page.locator('#status').innerText({ timeout: 1000 }).catch(() => '(no #status)');
    out(`  bob #status: ${JSON.stringify(status)}`);
    out(`  bob #messages: ${JSON.stringify(text)}`);
    await b.page.screenshot({ path: shot, fullPage: true, timeout: 5000 }).catch(() => {});
  }
  for (const line of consoleErrors) out(`  ${line}`);
} finally {
  await browser.close().catch(() => {});
}
process.exit(code);
