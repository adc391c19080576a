#!/usr/bin/env bash
# Build the demo page's JavaScript bundle (livekit-client + esbuild, from the npm registry):
# examples/frontend -> examples/static/demo.js. Needs Node.js 20 or newer. Skips the work when
# the bundle is up to date; --force rebuilds anyway.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
frontend="$root/examples/frontend"
bundle="$root/examples/static/demo.js"
node_major_min=20

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: Node.js ${node_major_min} or newer (with npm) is needed to build the demo bundle" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < node_major_min )); then
  echo "error: Node.js ${node_major_min} or newer is needed to build the demo bundle (found $(node --version))" >&2
  exit 1
fi

cd "$frontend"
# A copy of the lockfile node_modules was installed from: npm may touch its own files later.
stamp=node_modules/.installed-from-package-lock.json

if [[ "${1:-}" != "--force" && -f "$bundle" ]] && cmp -s package-lock.json "$stamp" \
  && [[ -z "$(find src package.json -newer "$bundle" -print -quit)" ]]; then
  exit 0
fi

if ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
npm run --silent build
echo "built ${bundle#"$root"/}"
