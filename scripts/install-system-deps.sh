#!/usr/bin/env bash
# Install the Debian packages a command needs, and only those that are missing.
#
#   scripts/install-system-deps.sh          # = test: redis-server (Redis dedupe tests), chromium (browser tests)
#   scripts/install-system-deps.sh bench    # wrk (the benchmark's load generator)
#   scripts/install-system-deps.sh all      # everything above
#
# A package counts as present when its program is on PATH (chromium: also chromium-browser or
# $CHROMIUM_PATH), however it was installed; then nothing runs and nothing needs root.
# Otherwise it runs apt-get update + apt-get install, as root or through sudo.
set -euo pipefail

usage() {
    echo "usage: $0 [test|bench|all]..." >&2
    exit 2
}

packages=()
for group in "${@:-test}"; do
    case "$group" in
        test) packages+=(redis-server chromium) ;;
        bench) packages+=(wrk) ;;
        all) packages+=(redis-server chromium wrk) ;;
        *) usage ;;
    esac
done

present() {
    case "$1" in
        chromium)
            [[ -n "${CHROMIUM_PATH:-}" && -x "${CHROMIUM_PATH}" ]] \
                || command -v chromium >/dev/null 2>&1 \
                || command -v chromium-browser >/dev/null 2>&1
            ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

missing=()
for package in "${packages[@]}"; do
    if ! present "$package" && [[ " ${missing[*]-} " != *" $package "* ]]; then
        missing+=("$package")
    fi
done

if [[ "${#missing[@]}" -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing ${missing[*]}; install them with your system's package manager" >&2
    exit 1
fi
if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: installing ${missing[*]} needs root: run as root, install sudo, or" \
        "apt-get install ${missing[*]} yourself" >&2
    exit 1
fi

echo "installing Debian packages (apt-get${as_root:+, through sudo}): ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
