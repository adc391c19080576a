#!/usr/bin/env bash
# Print the path of a livekit-server binary for tests, the demo and benchmarks, building the
# pinned release with `go install` when none is found. LIVEKIT_SERVER_BIN overrides the search.
# Usage: scripts/install-livekit-server.sh [version]   (default: the version the package pins)
set -euo pipefail

cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ -n "${1:-}" ]; then
    exec "$python" -m flask_livekit_onboarding.devserver ensure --version "$1"
fi
exec "$python" -m flask_livekit_onboarding.devserver ensure
