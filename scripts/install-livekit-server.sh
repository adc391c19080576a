#!/usr/bin/env bash
# Print the path of a livekit-server binary for tests, the demo and benchmarks, building the
# pinned release with `go install` when none is found (the package itself never builds one).
# LIVEKIT_SERVER_BIN overrides the search.
# Usage: scripts/install-livekit-server.sh [version]   (default: the version the package pins)
set -euo pipefail

cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
version="${1:-$("$python" -c 'from flask_livekit_onboarding.devserver import LIVEKIT_SERVER_VERSION as v; print(v)')}"
module="$("$python" -c 'from flask_livekit_onboarding.devserver import LIVEKIT_SERVER_MODULE as m; print(m)')"

if "$python" -m flask_livekit_onboarding.devserver ensure --version "$version" 2>/dev/null; then
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "error: no livekit-server $version found and no Go toolchain to build it;" \
        "install Go or set LIVEKIT_SERVER_BIN" >&2
    exit 1
fi
echo "==> building livekit-server $version with go install (minutes on a cold module cache)" >&2
timeout 1800 go install "$module@$version" >&2
exec "$python" -m flask_livekit_onboarding.devserver ensure --version "$version"
