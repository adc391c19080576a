#!/usr/bin/env bash
# The unit tests on the lowest versions pyproject.toml declares: a second virtualenv with every
# runtime dependency, and the unit tests' own tools, resolved to their lowest allowed version.
#   scripts/lowest-versions.sh           build the venv if needed, run tests/unit in it
#   scripts/lowest-versions.sh --setup   only build it
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LOWEST_VENV:-.venv-lowest}
UV=${UV:-.venv/bin/uv}
PYTHON=${PYTHON:-python3}
# The unit tests' tools; "redis" is the [redis] extra, at its lowest too.
TOOLS=("pytest>=8.0" "pytest-flask>=1.3" "hypothesis>=6.100" "flask-cors>=4.0" "flask-limiter>=3.5"
    "pyjwt>=2.0" "redis>=5.0" "flask-wtf>=1.2" "flask-login>=0.6.3" "flask-sqlalchemy>=3.1"
    "requests>=2.31" "pyyaml>=6.0" "opentelemetry-sdk>=1.20"
    "opentelemetry-exporter-otlp-proto-http>=1.20")
# Not opentelemetry-exporter-prometheus: its lowest (0.46b0) needs opentelemetry-api 1.25, which
# would hide the declared lower bound of the API; its documentation test is deselected here.

if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    rm -rf "$VENV"
    "$UV" venv --quiet --python "$PYTHON" "$VENV"
    # lowest-direct: the package's own dependencies at their declared lower bounds, and
    # whatever they need in turn at versions that work with them.
    "$UV" pip install --quiet --python "$VENV/bin/python" --resolution lowest-direct \
        -e . "${TOOLS[@]}"
    touch "$VENV/.installed"
fi
"$UV" pip freeze --python "$VENV/bin/python" \
    | grep -iE '^(flask|werkzeug|livekit-api|livekit-protocol|protobuf|aiohttp|blinker|click|python-dotenv|opentelemetry-api)==' \
    | tr '\n' ' ' && echo

[ "${1:-}" = "--setup" ] && exit 0
# Packaging tests build the sdist and wheel, which no dependency version changes; the
# Prometheus exporter is not installed here (see above), so its guide's test runs only in .venv.
exec "$VENV/bin/python" -m pytest tests/unit -q -p no:cacheprovider \
    -m "not packaging and not prometheus" "$@"
