#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: the real WebSocket peers and the browser.
#   * Debian: chromium (+ fonts, so screenshots render text)            -> /usr/bin/chromium
#   * PyPI:   tests/interop/requirements.txt (websockets, websocket-client) into the machine's python3
#   * npm:    tests/interop/package-lock.json (ws, playwright-core)     -> tests/interop/node_modules
# Idempotent: each step is skipped or cheap when already satisfied. Needs root for apt-get.
# playwright-core never downloads a browser; we use Debian's chromium (browser downloads fail here).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
APT_PACKAGES=(chromium fonts-dejavu-core fonts-liberation)

t0=$SECONDS
step() { echo "[setup-peers +$((SECONDS - t0))s] $*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for p in "${APT_PACKAGES[@]}"; do installed "$p" || need+=("$p"); done
if [ "${#need[@]}" -gt 0 ]; then
  step "apt-get install ${need[*]}"
  apt-get update -qq || { sleep 5; apt-get update -qq; }
  apt-get install -y -qq "${need[@]}" > /tmp/ws-setup-apt.log 2>&1 \
    || { tail -n 40 /tmp/ws-setup-apt.log; exit 1; }
else
  step "apt packages already installed: ${APT_PACKAGES[*]}"
fi
# The Debian wrapper script prints a harmless '[: unexpected operator' on machines where findmnt
# reports /dev/shm twice; stderr is dropped here for that reason only.
step "$(/usr/bin/chromium --version 2>/dev/null)"

step "pip install -r tests/interop/requirements.txt"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r tests/interop/requirements.txt
python3 -c 'import websockets, websocket; print("websockets", websockets.__version__, "| websocket-client", websocket.__version__)'

step "npm ci in tests/interop"
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/interop && node -e 'const r = require("module").createRequire(process.cwd() + "/"); console.log("ws", r("ws/package.json").version, "| playwright-core", r("playwright-core/package.json").version)')

step "done"
