#!/usr/bin/env bash
# Build the example agent's virtualenv (.venv/agent): livekit-agents from
# examples/agent/requirements.txt plus this package without its dependencies, so the agent
# reads the onboarding envelope without Flask. Skips the work when it is up to date.
#
# livekit-agents pins the livekit rtc SDK exactly, older than the one the tests and the demo
# use, hence an environment of its own. AGENT_VENV=<dir> puts it elsewhere.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AGENT_VENV:-$root/.venv/agent}"
requirements="$root/examples/agent/requirements.txt"
stamp="$venv/.installed"
python="${PYTHON:-python3}"

if [[ -f "$stamp" && ! "$requirements" -nt "$stamp" && ! "$root/pyproject.toml" -nt "$stamp" ]]; then
  exit 0
fi

echo "==> example agent environment (${venv#"$root"/})"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"
touch "$stamp"
