#!/usr/bin/env bash
# One command to see the extension work: a local LiveKit server, the example onboarding agent,
# an example Flask app and the browser demo page.
#
#   ./scripts/demo.sh                   # minimal app, anonymous demo mode, first click works
#   ./scripts/demo.sh existing_app      # the "existing app" example: sign in as ada / onboarding
#   PORT=8000 ./scripts/demo.sh         # another port (default 5000, or a free one if taken)
#   NO_AGENT=1 ./scripts/demo.sh        # without the example agent
#
# It creates .venv and the agent's .venv/agent when missing or out of date (not on every run),
# gets livekit-server, builds the JavaScript bundle, then runs everything until Ctrl-C, which
# stops all of it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
app="${1:-minimal}"
case "$app" in
  minimal|existing_app) ;;
  *) echo "usage: $0 [minimal|existing_app]" >&2; exit 2 ;;
esac

# The same rule as the Makefile's venv target: install only when pyproject.toml changed.
if [[ ! -x .venv/bin/python || ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  echo "==> installing flask-livekit-onboarding into .venv"
  make --no-print-directory venv
fi

agent_args=()
if [[ -n "${NO_AGENT:-}" ]]; then
  agent_args=(--no-agent)
else
  scripts/setup-agent-env.sh
fi

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
    # The runner stops the app, the agent and its LiveKit server on SIGTERM, then exits.
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
}
# Ctrl-C is how the demo ends: stop everything and exit 0, so `make demo` ends quietly too.
trap 'stop; exit 0' INT TERM
trap stop EXIT

.venv/bin/python -m examples.serve_demo --app "$app" --port "${PORT:-5000}" ${agent_args[@]+"${agent_args[@]}"} &
demo_pid=$!
wait "$demo_pid"
