#!/bin/sh
# Installs the Debian packages corio needs to build and test, when missing.
# Safe to run again: it only calls apt-get for what is absent.
set -e
need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
pkgs="gcc make libc6-dev libcriterion-dev libssl-dev openssl pkg-config valgrind"
# --cross: also what `make test-aarch64` needs (cross compiler, qemu-user)
[ "${1:-}" = "--cross" ] && pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
for p in $pkgs; do
    have_pkg "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "deps.sh: installing:$need"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps.sh: need root (or sudo) to install:$need" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq $need
