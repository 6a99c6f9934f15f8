#!/usr/bin/env node
// Smoke test of the browser harness: Debian chromium + playwright-core load a page and take a screenshot.
const USAGE = `Usage: node smoke.mjs URL SCREENSHOT_PATH [--expect-text TEXT]

  URL               http://127.0.0.1:PORT/... (loopback only)
  SCREENSHOT_PATH   PNG written after the page has loaded
  --expect-text T   also FAIL unless the page's body text contains T

Output: "STEP <name> ok ...", then "OK smoke title=<title> screenshot=<path>" and exit 0;
"FAIL <step>: <detail>" and exit 1 (also after 60 s in all); usage error: exit 2.
Environment: WS_CHROMIUM (default /usr/bin/chromium), WS_INTEROP_NODE_DIR (where playwright-core is).
`;

import { out, usage, startWatchdog, checkLoopbackHttpUrl, launchChromium } from './browser_common.mjs';

const argv = process.argv.slice(2);
let expectText = null;
const pos = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--expect-text' && i + 1 < argv.length) expectText = argv[++i];
  else if (argv[i] === '-h' || argv[i] === '--help') usage(USAGE);
  else if (argv[i].startsWith('--')) usage(USAGE, `unknown option ${argv[i]}`);
  else pos.push(argv[i]);
}
if (pos.length !== 2) usage(USAGE, 'expected URL and SCREENSHOT_PATH');
const [url, shot] = pos;
checkLoopbackHttpUrl(url, USAGE);
startWatchdog(60, 'smoke');

const browser = await launchChromium();
out(`STEP launch ok version=${browser.version()}`);
let code = 0;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  const resp = await page.goto(url, { waitUntil: 'load', timeout: 10_000 });
  if (!resp || !resp.ok()) throw new Error(`goto: HTTP ${resp ? resp.status() : 'no response'}`);
  out(`STEP load ok status=${resp.status()}`);
  if (expectText !== null) {
    const body = await page.locator('body').innerText();
    if (!body.includes(expectText)) throw new Error(`text: body does not contain ${JSON.stringify(expectText)}`);
    out('STEP text ok');
  }
  await page.screenshot({ path: shot, fullPage: true });
  out(`STEP screenshot ok ${shot}`);
  out(`OK smoke title=${JSON.stringify(await page.title())} screenshot=${shot}`);
} catch (e) {
  out(`FAIL ${e.message.split('\n')[0]}`);
  code = 1;
} finally {
  await browser.close().catch(() => {});
}
process.exit(code);
