#!/usr/bin/env bash
# Run the token endpoint benchmark from a fresh clone.
#
#   benchmarks/run.sh [--quick] [--check]                    # loopback profile
#   benchmarks/run.sh --profile remote [--quick] [--check]   # LiveKit behind TLS, added RTT
#
# Installs what is missing (benchmarks/install-tools.sh: wrk and nginx from Debian, vegeta and
# toxiproxy with `go install`), creates .venv when it is missing, installs the package and
# benchmarks/requirements.txt into it, then runs `python -m benchmarks` with the options given.
# A livekit-server binary is found or built with Go by `flask_livekit_onboarding.testing`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash benchmarks/install-tools.sh
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e . -r benchmarks/requirements.txt
exec .venv/bin/python -m benchmarks "$@"
