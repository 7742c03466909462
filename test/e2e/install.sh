#!/usr/bin/env bash
# Installs a real VS Code for the end-to-end test: code-server (VS Code 1.100 on Node 20) and playwright-core,
# driving Debian's Chromium. Only the npm registry and Debian's packages are used (see ../shared/recipes/vscode-e2e).
# usage: install.sh DIR
set -euo pipefail
T=$(mkdir -p "$1" && cd "$1" && pwd)
if [ "$(id -u)" = 0 ]; then
  dpkg -s ripgrep chromium libkrb5-dev build-essential python3 >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ripgrep chromium libkrb5-dev build-essential python3
  }
fi
export npm_config_unsafe_perm=true npm_config_nodedir=/usr npm_config_yes=true
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
cd "$T"
echo '{"name":"lrp-lens-e2e-host","private":true}' > package.json
# Without scripts first, so ripgrep's postinstall (a GitHub download) finds its binary already there.
npm install --ignore-scripts code-server@4.100.3 playwright-core@1.65.1
CS=$T/node_modules/code-server
(cd "$CS/lib/vscode" && npm install --ignore-scripts --omit=dev)
mkdir -p "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin"
cp "$(command -v rg)" "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
(cd "$CS/lib/vscode" && npm rebuild --foreground-scripts)
npm rebuild --foreground-scripts
touch "$T/.installed"
