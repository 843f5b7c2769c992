#!/usr/bin/env bash
# Run ballast on a schedule with a local Prefect server: server + deployments + a process worker.
#   scripts/schedule_local.sh            start everything, show the next scheduled cycles, keep running
#   scripts/schedule_local.sh --check    start, show the scheduled runs, stop again (a smoke check)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export BALLAST_HOME="${BALLAST_HOME:-$PWD}"
export PREFECT_HOME="${PREFECT_HOME:-$BALLAST_HOME/.prefect-server}"
PORT="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
mkdir -p "$PREFECT_HOME"

"$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" > "$PREFECT_HOME/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER ${WORKER:-} 2>/dev/null || true' EXIT
for _ in $(seq 1 90); do
  curl -sf "$PREFECT_API_URL/health" > /dev/null && break
  sleep 1
done
curl -sf "$PREFECT_API_URL/health" > /dev/null || { echo "Prefect server did not start; see $PREFECT_HOME/server.log"; exit 1; }

"$BIN/prefect" work-pool create ballast-local --type process --overwrite > /dev/null
"$BIN/prefect" --no-prompt deploy --all > "$PREFECT_HOME/deploy.log" 2>&1 || { cat "$PREFECT_HOME/deploy.log"; exit 1; }
echo "deployments:"
"$BIN/prefect" deployment ls
# The scheduler service creates the upcoming runs of each schedule within a few seconds.
sleep 15
echo "scheduled planning cycles:"
"$BIN/prefect" flow-run ls --state SCHEDULED --limit 12
if [ "${1:-}" = "--check" ]; then
  exit 0
fi
"$BIN/prefect" worker start --pool ballast-local &
WORKER=$!
wait $WORKER
