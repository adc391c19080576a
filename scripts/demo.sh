#!/usr/bin/env bash
# One command to see the extension work: a local LiveKit server, an example Flask app and the
# browser demo page.
#
#   ./scripts/demo.sh                   # minimal app, anonymous demo mode, first click works
#   ./scripts/demo.sh existing_app      # the "existing app" example: sign in as ada / onboarding
#   PORT=8000 ./scripts/demo.sh         # another port (default 5000, or a free one if taken)
#
# It creates .venv when missing, installs the package into it, gets livekit-server, builds
# the JavaScript bundle, then runs everything until Ctrl-C, which stops all of it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
app="${1:-minimal}"
case "$app" in
  minimal|existing_app) ;;
  *) echo "usage: $0 [minimal|existing_app]" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
echo "==> installing flask-livekit-onboarding into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

echo "==> livekit-server"
if [[ -x scripts/install-livekit-server.sh ]]; then
  PATH="$root/.venv/bin:$PATH" scripts/install-livekit-server.sh
else
  .venv/bin/python -m flask_livekit_onboarding.devserver ensure
fi

echo "==> demo page bundle"
scripts/build-demo-frontend.sh

demo_pid=""
stop() {
  trap - INT TERM EXIT
  if [[ -n "$demo_pid" ]] && kill -0 "$demo_pid" 2>/dev/null; then
    # The runner stops the app and its LiveKit server on SIGTERM, then exits.
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

.venv/bin/python -m examples.serve_demo --app "$app" --port "${PORT:-5000}" &
demo_pid=$!
wait "$demo_pid"
