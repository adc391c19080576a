#!/usr/bin/env bash
# Run the token endpoint benchmark from a fresh clone.
#
# Creates .venv when it is missing, installs the package and benchmarks/requirements.txt into it,
# then runs `python -m benchmarks` with the options given here (e.g. --quick).
# Needs wrk (scripts/install-system-deps.sh installs it) and a livekit-server binary, which
# `flask_livekit_onboarding.testing` finds or builds with Go.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk is not installed: run scripts/install-system-deps.sh (or apt-get install wrk)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e . -r benchmarks/requirements.txt
exec .venv/bin/python -m benchmarks "$@"
