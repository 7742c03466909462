#!/usr/bin/env bash
# Installs a real VS Code for the end-to-end and extension-host tests: code-server (VS Code 1.100 on Node 20)
# and playwright-core, driving Debian's Chromium. Only the npm registry and Debian's packages are used (see
# ../shared/recipes/vscode-e2e). Idempotent: a finished install leaves DIR/.installed with its versions, and a
# second run with the same versions returns at once.
# usage: install.sh DIR
set -euo pipefail
CS_VERSION=4.100.3
PW_VERSION=1.65.1
APT_PACKAGES="ripgrep chromium libkrb5-dev build-essential python3"
T=$(mkdir -p "$1" && cd "$1" && pwd)
STAMP="code-server@$CS_VERSION playwright-core@$PW_VERSION node@$(node -p 'process.versions.node.split(".")[0]')"
[ "$(cat "$T/.installed" 2>/dev/null)" = "$STAMP" ] && exit 0

ensure_apt_packages() {
  # shellcheck disable=SC2086
  dpkg -s $APT_PACKAGES >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "The VS Code tests need these Debian packages: $APT_PACKAGES." >&2
    echo "Install them (as root: apt-get install -y $APT_PACKAGES), or run the tests as root so they install themselves." >&2
    exit 1
  fi
  echo "installing Debian packages: $APT_PACKAGES"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES >/dev/null
}

install_code_server() {
  export npm_config_unsafe_perm=true npm_config_nodedir=/usr npm_config_yes=true
  export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false npm_config_loglevel=error
  cd "$T"
  rm -rf node_modules package-lock.json .installed
  echo '{"name":"lrp-lens-e2e-host","private":true}' > package.json
  # Without scripts first, so ripgrep's postinstall (a GitHub download) finds its binary already there.
  npm install --ignore-scripts "code-server@$CS_VERSION" "playwright-core@$PW_VERSION"
  local cs=$T/node_modules/code-server
  (cd "$cs/lib/vscode" && npm install --ignore-scripts --omit=dev)
  mkdir -p "$cs/lib/vscode/node_modules/@vscode/ripgrep/bin"
  cp "$(command -v rg)" "$cs/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
  (cd "$cs/lib/vscode" && npm rebuild --foreground-scripts >"$T/rebuild.log" 2>&1) || { tail -40 "$T/rebuild.log"; exit 1; }
  npm rebuild --foreground-scripts >>"$T/rebuild.log" 2>&1 || { tail -40 "$T/rebuild.log"; exit 1; }
}

START=$(date +%s)
echo "installing code-server $CS_VERSION into $T (once; later runs reuse it)"
exec 9>"$T/.lock"
flock 9   # two test runs sharing DIR install it once
if [ "$(cat "$T/.installed" 2>/dev/null)" != "$STAMP" ]; then
  ensure_apt_packages
  install_code_server
  echo "$STAMP" > "$T/.installed"
fi
echo "install took $(( $(date +%s) - START )) s"
