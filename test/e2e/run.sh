#!/usr/bin/env bash
# LRP Lens in a real VS Code (code-server) driven by Debian's Chromium. Installs what it needs on the first run
# (install.sh, cached in $LRP_LENS_E2E_DIR, default ~/.cache/lrp-lens/e2e) and loads this folder as the
# extension. Exit code = result.
#   run.sh host   extension-host tests (test/vscode, mocha inside the extension host, via code-server's
#                 extensionTestsPath payload); results read from a JSON file
#   run.sh ui     the browser end-to-end test (vscode.e2e.mjs): commands, panel, heatmap, errors, Cancel,
#                 crash recovery; its screenshots go to test/e2e/screenshots (ignored by git)
#   run.sh screenshots  ui, writing the README's screenshots (media/screenshots) instead (`npm run screenshots`)
#   run.sh installed  the extension as a user gets it: this machine's VSIX (npm run package) installed with
#                 code-server --install-extension into a fresh extensions folder; activation, Compute Relevance,
#                 the panel, the editor heatmap and Restart Engine against that installed copy
#   run.sh bench  command → panel timings with a warm engine, and the panel's render time for a large result
#                 (bench/vscodePanel.mjs; results in bench/results)
#   run.sh render only the large panel render of `bench` (plain Chromium, no code-server)
#   run.sh        host, then ui
# env: LRP_LENS_SHARED (default ../shared: the tests need models/stories260k), LRP_LENS_E2E_DIR, SHOT_DIR, BENCH_OUT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXT=$(cd "$HERE/../.." && pwd)
BENCH=$EXT/bench
MODES=${*:-host ui}
T=${LRP_LENS_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lrp-lens/e2e}
SHARED=${LRP_LENS_SHARED:-$EXT/../shared}
MODEL=$SHARED/models/stories260k
if [ ! -f "$MODEL/config.json" ]; then
  echo "skipping the VS Code tests: no model at $MODEL (set LRP_LENS_SHARED to the folder holding models/stories260k)"
  exit 0
fi
MODEL=$(cd "$MODEL" && pwd)
[ -f "$EXT/dist/extension.js" ] && [ -f "$EXT/dist/test/vscode/index.js" ] || { echo "build first: npm run build" >&2; exit 1; }
"$HERE/install.sh" "$T"
# Runtime state in a short private folder: unix socket paths must stay < 108 characters.
S=$(mktemp -d /tmp/lrp-e2e.XXXXXX)
CS_PID=
# Runtime state is removed after code-server (and any engine process it started) is gone; a file still being
# written there while rm runs must not fail the run.
cleanup() {
  [ -n "$CS_PID" ] && { kill "$CS_PID" 2>/dev/null; wait "$CS_PID" 2>/dev/null; }
  for _ in 1 2 3 4 5; do rm -rf "$S" 2>/dev/null && return 0; sleep 1; done
  echo "note: could not remove $S" >&2
  return 0
}
trap cleanup EXIT

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# start_code_server NAME WORKSPACE LINK_EXTENSION(yes|no): a fresh profile under $S/NAME; sets PORT and CS_PID.
start_code_server() {
  local d=$S/$1
  mkdir -p "$d"/{ud/User,exts,xdgc,xdgd,xdgcache,tmp}
  cat > "$d/ud/User/settings.json" <<'J'
{ "workbench.startupEditor": "none", "telemetry.telemetryLevel": "off", "update.mode": "none",
  "extensions.autoCheckUpdates": false, "extensions.autoUpdate": false, "extensions.ignoreRecommendations": true,
  "workbench.enableExperiments": false, "workbench.tips.enabled": false, "git.enabled": false,
  "security.workspace.trust.enabled": false, "chat.disableAIFeatures": true }
J
  [ "$3" = yes ] && ln -sfn "$EXT" "$d/exts/lrp-lens.lrp-lens-0.1.0"
  PORT=$(free_port)
  printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" > "$d/config.yaml"
  XDG_CONFIG_HOME=$d/xdgc XDG_DATA_HOME=$d/xdgd XDG_CACHE_HOME=$d/xdgcache TMPDIR=$d/tmp \
  LRP_LENS_SHARED=$SHARED LRP_LENS_VSCODE_RESULTS=$d/host-results.json \
    "$T/node_modules/.bin/code-server" --config "$d/config.yaml" \
    --bind-addr "127.0.0.1:$PORT" --auth none \
    --user-data-dir "$d/ud" --extensions-dir "$d/exts" \
    --disable-telemetry --disable-update-check --disable-workspace-trust \
    --disable-getting-started-override --ignore-last-opened \
    "$2" > "$d/code-server.log" 2>&1 &
  CS_PID=$!
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.5; done
  echo "code-server did not start:"; cat "$d/code-server.log"; return 1
}

stop_code_server() { kill "$CS_PID" 2>/dev/null || true; wait "$CS_PID" 2>/dev/null || true; CS_PID=; }

show_logs() {
  echo "=== code-server and extension-host logs ($1) ==="
  cat "$S/$1/code-server.log"
  find "$S/$1/ud/logs" -type f \( -name 'remoteexthost.log' -o -name '*LRP*' \) | while read -r f; do echo "--- $f"; cat "$f"; done
}

# A model whose attribution takes seconds, for the Cancel check (built once into the install folder).
slow_model() {
  local dir=$T/models/slow-llama-v1
  [ -f "$dir/onnx/model.onnx" ] || "$EXT/node_modules/.bin/tsx" "$HERE/slowModel.ts" "$dir" "$MODEL" >&2
  echo "$dir"
}

run_host() {
  local ws=$S/host-ws
  mkdir -p "$ws"
  start_code_server host "$ws" no
  local rc=0
  CS_PORT=$PORT EXT="$EXT" WS="$ws" RESULTS="$S/host/host-results.json" node "$HERE/hostTests.mjs" || rc=$?
  stop_code_server
  [ $rc = 0 ] || show_logs host
  return $rc
}

# lily_workspace DIR: a workspace with stories260k configured and lily.prompt in it.
lily_workspace() {
  mkdir -p "$1/.vscode"
  printf '{ "lrpLens.model": "%s" }\n' "$MODEL" > "$1/.vscode/settings.json"
  printf 'Once upon a time, there was a little girl named\n' > "$1/lily.prompt"
}

# run_ui SHOT_DIR: the browser end-to-end test, writing the panel and heatmap screenshots to SHOT_DIR.
run_ui() {
  local ws=$S/ui-ws
  lily_workspace "$ws"
  local slow; slow=$(slow_model)
  start_code_server ui "$ws" yes
  local rc=0
  mkdir -p "$T/artifacts"
  CS_URL="http://127.0.0.1:$PORT/?folder=$ws" SHOT_DIR="$1" UD="$S/ui/ud" WS="$ws" \
    ARTIFACTS="$T/artifacts" MODEL="$MODEL" SLOW_MODEL="$slow" node "$HERE/vscode.e2e.mjs" || rc=$?
  stop_code_server
  [ $rc = 0 ] || show_logs ui
  return $rc
}

# This machine's VSIX, as `npm run package` names it.
vsix_path() {
  node -e "const p = require('$EXT/package.json'); console.log('$EXT/dist/vsix/' + p.name + '-' + p.version + '-' + process.platform + '-' + process.arch + '.vsix')"
}

run_installed() {
  local vsix; vsix=$(vsix_path)
  [ -f "$vsix" ] || { echo "package first: npm run package (no $vsix)" >&2; return 1; }
  local d=$S/installed ws=$S/installed-ws
  lily_workspace "$ws"
  mkdir -p "$d"/{ud,exts,xdgc,xdgd,xdgcache,tmp}
  XDG_CONFIG_HOME=$d/xdgc XDG_DATA_HOME=$d/xdgd XDG_CACHE_HOME=$d/xdgcache TMPDIR=$d/tmp \
    "$T/node_modules/.bin/code-server" --user-data-dir "$d/ud" --extensions-dir "$d/exts" \
    --install-extension "$vsix" > "$d/install.log" 2>&1 || { cat "$d/install.log"; return 1; }
  start_code_server installed "$ws" no
  local rc=0
  mkdir -p "$T/artifacts/installed"
  CS_URL="http://127.0.0.1:$PORT/?folder=$ws" SHOT_DIR="$T/artifacts/installed" UD="$d/ud" WS="$ws" \
    ARTIFACTS="$T/artifacts/installed" MODEL="$MODEL" INSTALLED_EXTS="$d/exts" node "$HERE/vscode.e2e.mjs" || rc=$?
  stop_code_server
  [ $rc = 0 ] || { cat "$d/install.log"; show_logs installed; }
  return $rc
}

run_bench() {
  local ws=$S/bench-ws
  lily_workspace "$ws"
  local page=$S/render-page
  "$EXT/node_modules/.bin/tsx" "$BENCH/panelRenderPage.ts" "$page" "$EXT"
  start_code_server bench "$ws" yes
  local rc=0
  CS_URL="http://127.0.0.1:$PORT/?folder=$ws" UD="$S/bench/ud" WS="$ws" RENDER_PAGE="$page/index.html" VSIX="$(vsix_path)" \
    OUT="${BENCH_OUT:-$BENCH/results/vscode.json}" node "$BENCH/vscodePanel.mjs" || rc=$?
  stop_code_server
  [ $rc = 0 ] || show_logs bench
  return $rc
}

run_render() {
  local page=$S/render-page
  "$EXT/node_modules/.bin/tsx" "$BENCH/panelRenderPage.ts" "$page" "$EXT"
  BENCH_ONLY=render RENDER_PAGE="$page/index.html" OUT="${BENCH_OUT:-$BENCH/results/render.json}" node "$BENCH/vscodePanel.mjs"
}

for mode in $MODES; do
  START=$(date +%s)
  case $mode in
    host) run_host ;;
    ui) run_ui "${SHOT_DIR:-$HERE/screenshots}" ;;
    screenshots) run_ui "$EXT/media/screenshots" ;;
    installed) run_installed ;;
    bench) run_bench ;;
    render) run_render ;;
    *) echo "unknown mode '$mode' (host, ui, screenshots, installed, bench, render)" >&2; exit 2 ;;
  esac
  echo "=== $mode: $(( $(date +%s) - START )) s ==="
done
