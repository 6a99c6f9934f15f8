// Shared helpers for the Node interop peers (node_client.mjs, node_server.mjs).
//
// Output contract shared by every peer script (Python and Node):
//   * progress lines on stdout, one per check: "STEP <name> ok [detail]"
//   * informational lines: "CONNECTED ...", "EXTENSIONS <header value or none>", "LISTENING <port>",
//     "CLOSED code=<n> reason=<text>"
//   * the last line on success: "OK <summary>" and exit status 0
//   * on any mismatch, error or timeout: "FAIL <step>: <detail>" (stdout) and exit status 1
//   * bad command line: usage on stderr and exit status 2
// Only loopback addresses are used; every script stops on its own (watchdog timeout).

export function out(line) {
  process.stdout.write(line + '\n');
}

export function fail(step, detail) {
  // stdout writes to pipes and files are synchronous on Linux, so exiting at once loses nothing.
  out(`FAIL ${step}: ${detail}`);
  process.exit(1);
}

export function usage(text, msg) {
  process.stderr.write(`${msg ? 'error: ' + msg + '\n' : ''}${text}`);
  process.exit(2);
}

export function startWatchdog(seconds, what) {
  setTimeout(() => {
    out(`FAIL timeout: ${what} did not finish within ${seconds} s`);
    process.exit(1);
  }, seconds * 1000);
}

// Parses: positional, --deflate, --window-bits N, --no-context-takeover WHICH, plus `flags` (booleans)
// and `valued` (options taking a value). Returns { positional: [], deflate: null | {...}, opts: {} }.
export function parseArgs(argv, usageText, { flags = [], valued = [] } = {}) {
  const positional = [];
  const opts = {};
  let deflate = false;
  let windowBits = null;
  let nct = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(usageText, `${a} needs a value`);
      return argv[++i];
    };
    if (a === '-h' || a === '--help') {
      process.stdout.write(usageText);
      process.exit(0);
    } else if (a === '--deflate') deflate = true;
    else if (a === '--window-bits') {
      windowBits = Number(next());
      if (!Number.isInteger(windowBits) || windowBits < 8 || windowBits > 15) {
        usage(usageText, '--window-bits must be an integer between 8 and 15');
      }
    } else if (a === '--no-context-takeover') {
      nct = next();
      if (!['none', 'server', 'client', 'both'].includes(nct)) {
        usage(usageText, '--no-context-takeover takes none, server, client or both');
      }
    } else if (flags.includes(a)) opts[a.slice(2)] = true;
    else if (valued.includes(a)) opts[a.slice(2)] = next();
    else if (a.startsWith('-')) usage(usageText, `unknown option ${a}`);
    else positional.push(a);
  }
  const enabled = deflate || windowBits !== null || nct !== null;
  const n = nct || 'none';
  return {
    positional,
    opts,
    deflate: enabled
      ? {
          windowBits,
          serverNoContextTakeover: n === 'server' || n === 'both',
          clientNoContextTakeover: n === 'client' || n === 'both',
        }
      : null,
  };
}

export function describeDeflate(d) {
  if (!d) return 'deflate=off';
  const parts = ['deflate=on'];
  if (d.windowBits !== null) parts.push(`window_bits=${d.windowBits}`);
  if (d.serverNoContextTakeover) parts.push('server_no_context_takeover');
  if (d.clientNoContextTakeover) parts.push('client_no_context_takeover');
  return parts.join(',');
}
