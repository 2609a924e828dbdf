#!/usr/bin/env bash
# Helm, built from the Go module proxy (no package on this machine has it), for the chart tests (tests/deploy):
# `helm lint --strict` and `helm template` on helm/market-media with every values file.
#
#   scripts/services/helm.sh install|path|version
#
# Environment (all optional):
#   XDG_CACHE_HOME (~/.cache): the binary lives in $XDG_CACHE_HOME/mm-platform/helm-<version>/bin, so a second
#   run (and a second clone) finds it at once.
#
# Tests: export MM_TEST_HELM=$(scripts/services/helm.sh path) (scripts/test.sh does).
set -euo pipefail

HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2

# The version in the path lets a version bump rebuild without clobbering a binary a test is running.
BIN_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/mm-platform/helm-$HELM_VERSION/bin
HELM=$BIN_DIR/helm

say() { echo "helm: $*"; }
die() { echo "helm: error: $*" >&2; exit 1; }

# Serialises concurrent callers (e.g. `make test` and a developer's shell building at the same time).
lock() {
    local file=$1
    mkdir -p "$(dirname "$file")"
    exec 9>"$file"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
}

installed() { [[ -x $HELM ]]; }

install() {
    installed && return 0
    command -v go >/dev/null 2>&1 || die "Go (>= 1.25) is needed to build helm; install it and retry"
    lock "$BIN_DIR/.build.lock"
    installed && return 0   # another caller finished the build while we waited

    say "building $HELM_MODULE $HELM_VERSION from the Go module proxy (first run only, a few minutes on 2 cores)…"
    local t0=$SECONDS tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    # The empty working dir keeps any surrounding go.mod/go.work out of the way; GOBIN points at a
    # temp dir so that an interrupted build never leaves a half-written binary in BIN_DIR.
    if ! (cd "$tmp" && CGO_ENABLED=0 GOWORK=off GOFLAGS='-buildvcs=false' GOBIN="$tmp/bin" \
        go install -trimpath -ldflags "-s -w -X $HELM_MODULE/internal/version.version=$HELM_VERSION" \
            "$HELM_MODULE/cmd/helm@$HELM_VERSION") >"$tmp/build.log" 2>&1; then
        tail -n 30 "$tmp/build.log" >&2
        die "building $HELM_MODULE@$HELM_VERSION failed (is the Go module proxy reachable?)"
    fi
    mkdir -p "$BIN_DIR"
    mv -f "$tmp/bin/helm" "$HELM.partial"
    mv -f "$HELM.partial" "$HELM"
    say "built $HELM in $((SECONDS - t0)) s"
}

case ${1:-} in
install)
    install
    say "installed $HELM ($("$HELM" version --short 2>/dev/null | head -n 1))"
    ;;
path)
    installed || die "not installed: run '$0 install'"
    echo "$HELM"
    ;;
version)
    installed || die "not installed: run '$0 install'"
    "$HELM" version --short
    ;;
*)
    echo "usage: $0 install|path|version" >&2
    exit 2
    ;;
esac
