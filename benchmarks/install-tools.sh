#!/usr/bin/env bash
# Install what the benchmark drives, only when it is missing:
#   wrk (Debian)        closed-loop load: the maximum request rate
#   nginx (Debian)      the TLS terminator in front of livekit-server (--profile remote)
#   vegeta (go install) open-loop load at a fixed rate below saturation
#   toxiproxy (go install) the round-trip time between the apps and LiveKit (--profile remote)
# Go tools land where `go install` puts them (GOBIN or $(go env GOPATH)/bin); the benchmark
# looks there too. Prints nothing when everything is present.
set -euo pipefail

VEGETA_MODULE="github.com/tsenart/vegeta/v12@v12.13.0"
TOXIPROXY_MODULE="github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0"

apt_packages=()
command -v wrk >/dev/null 2>&1 || [ -x /usr/bin/wrk ] || apt_packages+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_packages+=(nginx-light)

if [ "${#apt_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "error: need root or sudo to install: ${apt_packages[*]}" >&2
        exit 1
    fi
    echo "installing: ${apt_packages[*]}" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # The benchmark starts its own nginx; Debian's packaging must not start a system one.
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >&2
fi

go_bin_dir() {
    local gobin
    gobin="$(go env GOBIN)"
    if [ -n "$gobin" ]; then echo "$gobin"; else echo "$(go env GOPATH)/bin"; fi
}

need_go=()
if ! command -v vegeta >/dev/null 2>&1; then need_go+=("$VEGETA_MODULE"); fi
if ! command -v toxiproxy-server >/dev/null 2>&1; then need_go+=("$TOXIPROXY_MODULE"); fi
if [ "${#need_go[@]}" -gt 0 ]; then
    if ! command -v go >/dev/null 2>&1; then
        echo "error: Go is needed to build vegeta and toxiproxy (go install)" >&2
        exit 1
    fi
    bin="$(go_bin_dir)"
    for module in "${need_go[@]}"; do
        case "$module" in
            *vegeta*) [ -x "$bin/vegeta" ] && continue ;;
            *toxiproxy*) [ -x "$bin/toxiproxy-server" ] && continue ;;
        esac
        echo "building: $module" >&2
        if [[ "$module" == *toxiproxy* ]]; then
            # The module's command is called "server"; keep a distinct name beside livekit-server's.
            tmp="$(mktemp -d)"
            GOBIN="$tmp" go install "$module" >&2
            mv "$tmp/server" "$bin/toxiproxy-server"
            rmdir "$tmp"
        else
            go install "$module" >&2
        fi
    done
fi
