#!/usr/bin/env bash
# Debian's chromium and chromedriver for the admin UI's browser tests.
#
#   scripts/services/browser.sh install|status
#
# install is a no-op when both are on PATH; otherwise it installs the Debian packages (as root, or through sudo).
set -euo pipefail

say() { printf 'browser: %s\n' "$*"; }
die() { printf 'browser: error: %s\n' "$*" >&2; exit 1; }

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

case "${1:-}" in
install)
    if have; then
        say "chromium and chromedriver are installed ($(chromedriver --version | cut -d' ' -f1-2))"
        exit 0
    fi
    if [ "$(id -u)" -eq 0 ]; then as_root=(); elif command -v sudo >/dev/null 2>&1; then as_root=(sudo -n); else
        die "installing chromium needs root: run 'apt-get install chromium chromium-driver' as root"
    fi
    say "installing Debian's chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
        { "${as_root[@]}" apt-get update -q >/dev/null && "${as_root[@]}" apt-get install -y -q chromium chromium-driver >/dev/null; } ||
        die "apt-get could not install chromium chromium-driver"
    have || die "chromium or chromedriver is still missing after the install"
    say "installed $(chromedriver --version | cut -d' ' -f1-2)"
    ;;
status)
    have && say "installed" || { say "not installed (scripts/services/browser.sh install)"; exit 1; }
    ;;
*)
    echo "usage: $0 install|status" >&2
    exit 2
    ;;
esac
