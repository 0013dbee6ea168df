#!/usr/bin/env bash
# Installs a real VS Code for the extension and end-to-end tests, offline (npm registry + Debian apt only), and the
# Debian packages the sandbox itself is built and run with:
# code-server 4.96.4 (= VS Code 1.96.4, the last one whose engines allow Node 20) with a Node extension host,
# Debian's Chromium and ripgrep, and playwright-core to drive the browser.
#
# Everything lands in a gitignored cache folder of the project (default .cache/vscode-e2e, or $VSCODE_E2E_DIR).
# A marker file records the versions; when it matches, a second run is a no-op in well under a second.
# Needs root for apt-get (skipped when the Debian packages are already there), Node 20, g++, make, python3.
#
# Why the steps look like this (each one replaces something that would reach GitHub or VS Code's servers):
# - code-server's own postinstall wants a git dependency: install with --ignore-scripts and do its work here.
# - VS Code's one git dependency (@vscode/proxy-agent 0.27.0) is byte-identical to the registry tarball
#   (same sha512 in the shrinkwrap): point its `resolved` URL at the registry.
# - @vscode/ripgrep downloads rg from GitHub in its postinstall: scripts stay off, Debian's rg is linked in.
# - argon2 would fetch a prebuilt binary: build it from source; the other native modules via node-gyp
#   (kerberos needs libkrb5-dev, and without it `npm rebuild` stops there and skips the modules after it).
set -euo pipefail

CODE_SERVER_VERSION=4.96.4
VSCODE_VERSION=1.96.4
PLAYWRIGHT_CORE_VERSION=1.65.1
# bubblewrap: the sandbox the extension runs code in; libseccomp-dev: its seccomp filter is built with it; uidmap:
# newuidmap/newgidmap, which give an ordinary user's sandboxes host ids of their own
APT_PACKAGES=(bubblewrap libseccomp-dev uidmap chromium ripgrep libkrb5-dev)
RECIPE=1   # bump when the steps below change: the marker then no longer matches and the install is redone

PROJECT=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${VSCODE_E2E_DIR:-$PROJECT/.cache/vscode-e2e}
MARKER="$ROOT/installed.json"
NODE_ABI=$(node -p 'process.versions.modules')
WANT="{\"recipe\":$RECIPE,\"codeServer\":\"$CODE_SERVER_VERSION\",\"vscode\":\"$VSCODE_VERSION\",\"playwrightCore\":\"$PLAYWRIGHT_CORE_VERSION\",\"nodeAbi\":\"$NODE_ABI\"}"

T_START=$(date +%s)
log() { echo "[install-vscode-server +$(( $(date +%s) - T_START ))s] $*"; }

have_debs() { dpkg-query -W -f='${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null | grep -c '^install ok installed$' | grep -qx "${#APT_PACKAGES[@]}"; }

# The Debian packages first, on their own: adding one to the list must not redo the VS Code install below.
if have_debs; then
  log "Debian packages already present: ${APT_PACKAGES[*]}"
else
  log "apt-get: ${APT_PACKAGES[*]}"
  if [[ $EUID -ne 0 ]]; then
    echo "install-vscode-server: needs the Debian packages ${APT_PACKAGES[*]}; run as root, or: sudo apt-get install ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
  log "apt-get done"
fi

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" ]] && [[ -x "$ROOT/code-server/node_modules/.bin/code-server" ]]; then
  log "already installed ($WANT) in $ROOT"
  exit 0
fi

export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false npm_config_loglevel=warn
export JOBS=max   # node-gyp compiles with every core (27 s -> 17 s on 2 cores)

# A half-finished earlier attempt is not trusted: start from scratch.
rm -rf "$ROOT/code-server" "$ROOT/playwright" "$MARKER"
mkdir -p "$ROOT/code-server" "$ROOT/playwright"

log "code-server $CODE_SERVER_VERSION from the npm registry (scripts off)"
cd "$ROOT/code-server"
echo '{"name":"vscode-e2e-code-server","private":true}' > package.json
npm install --ignore-scripts "code-server@$CODE_SERVER_VERSION"
log "argon2 from source"
npm_config_build_from_source=true npm rebuild argon2

VS="$ROOT/code-server/node_modules/code-server/lib/vscode"
cd "$VS"
log "VS Code's production dependencies (code-server's postinstall, by hand)"
sed -i 's#git+ssh://git@github.com/microsoft/vscode-proxy-agent.git\#0803e0a7d1249bcb64ae9d256d0ee732b7246ea5#https://registry.npmjs.org/@vscode/proxy-agent/-/proxy-agent-0.27.0.tgz#' npm-shrinkwrap.json
if grep -q 'git+ssh://' npm-shrinkwrap.json; then
  echo "install-vscode-server: a git dependency is left in VS Code's shrinkwrap; this script knows only proxy-agent 0.27.0" >&2
  exit 1
fi
npm install --omit=dev --ignore-scripts
log "native modules (node-gyp)"
npm rebuild @parcel/watcher @vscode/spdlog @vscode/deviceid native-watchdog node-pty kerberos \
            @vscode/windows-process-tree @vscode/windows-registry
# npm's rebuild can skip a module silently; loading each one is the real check.
for m in @parcel/watcher @vscode/spdlog native-watchdog node-pty kerberos; do
  node -e "require('$m')" || { echo "install-vscode-server: native module $m does not load" >&2; exit 1; }
done
(cd "$ROOT/code-server/node_modules/argon2" && node -e "require('.')") \
  || { echo "install-vscode-server: argon2 does not load" >&2; exit 1; }
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sfn /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
ln -sfn node_modules node_modules.asar
ln -sfn code-linux.sh bin/remote-cli/code-server
ln -sfn browser-linux.sh bin/helpers/browser.sh
log "built-in extensions' dependencies (typescript for the TS/JS language features)"
(cd extensions && npm install --omit=dev)

log "playwright-core $PLAYWRIGHT_CORE_VERSION (drives Debian's /usr/bin/chromium; no browser download)"
cd "$ROOT/playwright"
echo '{"name":"vscode-e2e-playwright","private":true}' > package.json
npm install --ignore-scripts "playwright-core@$PLAYWRIGHT_CORE_VERSION"

log "code-server $(node -p "require('$ROOT/code-server/node_modules/code-server/package.json').version"), VS Code $(node -p "require('$VS/package.json').version")"
echo "$WANT" > "$MARKER"
log "done: $(du -sh "$ROOT" | cut -f1) in $ROOT"
