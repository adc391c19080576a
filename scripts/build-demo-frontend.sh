#!/usr/bin/env bash
# Build the demo page's JavaScript bundle (livekit-client + esbuild, from the npm registry):
# examples/frontend -> examples/static/demo.js. Skips the work when the bundle is up to date;
# --force rebuilds anyway.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
frontend="$root/examples/frontend"
bundle="$root/examples/static/demo.js"

if ! command -v npm >/dev/null 2>&1; then
  echo "error: npm is needed to build the demo bundle (install Node.js 18 or newer)" >&2
  exit 1
fi

if [[ "${1:-}" != "--force" && -f "$bundle" ]] \
  && [[ -z "$(find "$frontend/src" "$frontend/package-lock.json" -newer "$bundle" -print -quit)" ]]; then
  exit 0
fi

cd "$frontend"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
echo "built ${bundle#"$root"/}"
