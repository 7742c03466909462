#!/usr/bin/env bash
# LRP Lens end to end in a real VS Code (code-server) driven by Debian's Chromium: installs what it needs on the
# first run (test/e2e/install.sh), loads this folder as the extension, opens a prompt file with stories260k
# configured and checks the command, panel, heatmap, exports, restart and reload. Exit code = result.
# env: PORT, MODEL (default ../shared/models/stories260k), SHOT_DIR (default media/screenshots)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXT=$(cd "$HERE/../.." && pwd)
T=${LRP_LENS_E2E_DIR:-/tmp/lrp-lens-e2e}   # short: unix socket paths must stay < 108 characters
[ -f "$T/.installed" ] || "$HERE/install.sh" "$T"
PORT=${PORT:-18080}
MODEL=${MODEL:-$(cd "${LRP_LENS_SHARED:-$EXT/../shared}" && pwd)/models/stories260k}
SHOT_DIR=${SHOT_DIR:-$EXT/media/screenshots}
S=$T/s
WS=$T/ws
rm -rf "$S" "$WS"
mkdir -p "$S"/{ud/User,exts,xdgc,xdgd,xdgcache,tmp} "$WS/.vscode" "$SHOT_DIR"
cat > "$S/ud/User/settings.json" <<'J'
{ "workbench.startupEditor": "none", "telemetry.telemetryLevel": "off", "update.mode": "none",
  "extensions.autoCheckUpdates": false, "extensions.autoUpdate": false, "extensions.ignoreRecommendations": true,
  "workbench.enableExperiments": false, "workbench.tips.enabled": false, "git.enabled": false,
  "security.workspace.trust.enabled": false, "chat.disableAIFeatures": true }
J
printf '{ "lrpLens.model": "%s" }\n' "$MODEL" > "$WS/.vscode/settings.json"
printf 'Once upon a time, there was a little girl named\n' > "$WS/lily.prompt"
ln -sfn "$EXT" "$S/exts/lrp-lens.lrp-lens-0.1.0"
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" > "$S/config.yaml"

XDG_CONFIG_HOME=$S/xdgc XDG_DATA_HOME=$S/xdgd XDG_CACHE_HOME=$S/xdgcache TMPDIR=$S/tmp \
  "$T/node_modules/.bin/code-server" --config "$S/config.yaml" \
  --bind-addr "127.0.0.1:$PORT" --auth none \
  --user-data-dir "$S/ud" --extensions-dir "$S/exts" \
  --disable-telemetry --disable-update-check --disable-workspace-trust \
  --disable-getting-started-override --ignore-last-opened \
  "$WS" > "$T/code-server.log" 2>&1 &
CS_PID=$!
trap 'kill $CS_PID 2>/dev/null || true' EXIT
for i in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$PORT/healthz"; echo
set +e
(cd "$T" && CS_URL="http://127.0.0.1:$PORT/?folder=$WS" SHOT_DIR="$SHOT_DIR" UD="$S/ud" WS="$WS" ARTIFACTS="$T" \
  node "$HERE/vscode.e2e.mjs")
RC=$?
echo "=== code-server.log ==="; cat "$T/code-server.log"
echo "=== extension-host / output logs ==="
find "$S/ud/logs" -type f \( -path '*exthost*' -o -name '*LRP*' \) | while read -r f; do echo "--- $f"; cat "$f"; done
exit $RC
