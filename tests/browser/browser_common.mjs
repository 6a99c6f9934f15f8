// Shared helpers for the headless Chromium harness (smoke.mjs, chat_test.mjs).
//
// playwright-core is installed by `npm ci` in tests/interop (one package.json for all Node peers);
// it is found through WS_INTEROP_NODE_DIR, or ../interop next to this file.
// The browser is Debian's chromium (WS_CHROMIUM, default /usr/bin/chromium): playwright's own browser
// download cannot work on these machines, and playwright-core never tries one.
// Only loopback URLs are accepted; every script stops on its own (watchdog).

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.WS_INTEROP_NODE_DIR || path.resolve(here, '../interop');
const require = createRequire(path.join(nodeDir, 'package.json'));

export function out(line) {
  process.stdout.write(line + '\n');
}

export function usage(text, msg) {
  process.stderr.write(`${msg ? 'error: ' + msg + '\n' : ''}${text}`);
  process.exit(2);
}

export function startWatchdog(seconds, what) {
  const t = setTimeout(() => {
    out(`FAIL timeout: ${what} did not finish within ${seconds} s`);
    process.exit(1);
  }, seconds * 1000);
  return t;
}

export function checkLoopbackHttpUrl(url, usageText) {
  if (!/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+(\/|$)/.test(url)) {
    usage(usageText, 'URL must be http:// (or https://) on a loopback address with an explicit port');
  }
}

// Flags agreed in shared/design.md. Without the background-networking ones Chromium keeps trying to
// reach Google's hosts, which this machine's closed network refuses.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium() {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    out(`FAIL setup: cannot load playwright-core from ${nodeDir} (run npm ci there): ${e.message}`);
    process.exit(1);
  }
  const executablePath = process.env.WS_CHROMIUM || '/usr/bin/chromium';
  try {
    // playwright creates (and removes) a fresh temporary user-data-dir itself.
    return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
  } catch (e) {
    out(`FAIL launch: cannot start ${executablePath}: ${e.message.split('\n')[0]}`);
    process.exit(1);
  }
}
