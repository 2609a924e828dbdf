#!/usr/bin/env bash
# Local S3-compatible server (SeaweedFS) on 127.0.0.1 for tests and development.
#
#   scripts/services/s3.sh start|stop|status|install
#
# Environment (all optional):
#   S3_PORT (18333)  S3_ACCESS_KEY (mmtest)  S3_SECRET_KEY (mmtest-secret)
#   S3_MASTER_PORT (19333)  S3_VOLUME_PORT (18080)  S3_FILER_PORT (18888)
#   MM_SERVICES_DIR (<repo>/.mm/services)  S3_START_TIMEOUT (60)  S3_STOP_TIMEOUT (5)
#   XDG_CACHE_HOME (~/.cache): the binary lives in $XDG_CACHE_HOME/mm-platform/bin
#
# Clients: endpoint http://127.0.0.1:$S3_PORT, region us-east-1, path-style addressing.
# Data survives stop/start; delete the state dir for a clean slate.
set -euo pipefail

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
SEAWEEDFS_COMMIT=${SEAWEEDFS_VERSION##*-}

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${MM_SERVICES_DIR:-$REPO_DIR/.mm/services}/s3
DATA_DIR=$STATE_DIR/data
LOG_FILE=$STATE_DIR/s3.log
PID_FILE=$STATE_DIR/s3.pid
CONFIG_FILE=$STATE_DIR/s3-config.json

BIN_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/mm-platform/bin
# The commit in the file name lets a version bump rebuild without clobbering a running binary.
WEED=$BIN_DIR/weed-$SEAWEEDFS_COMMIT

HOST=127.0.0.1
S3_PORT=${S3_PORT:-18333}
# Away from SeaweedFS's defaults (9333/8080/8888) so a developer's own cluster can coexist;
# gRPC ports are these plus 10000 and must stay free too.
MASTER_PORT=${S3_MASTER_PORT:-19333}
VOLUME_PORT=${S3_VOLUME_PORT:-18080}
FILER_PORT=${S3_FILER_PORT:-18888}
ACCESS_KEY=${S3_ACCESS_KEY:-mmtest}
SECRET_KEY=${S3_SECRET_KEY:-mmtest-secret}
START_TIMEOUT=${S3_START_TIMEOUT:-60}
STOP_TIMEOUT=${S3_STOP_TIMEOUT:-5}
ENDPOINT=http://$HOST:$S3_PORT

say() { echo "s3: $*"; }
die() { echo "s3: error: $*" >&2; exit 1; }

# Serialises concurrent callers (e.g. parallel test workers all calling start).
lock() {
    local file=$1
    mkdir -p "$(dirname "$file")"
    exec 9>"$file"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
}

installed() { [[ -x $WEED ]]; }

install() {
    installed && return 0
    command -v go >/dev/null 2>&1 || die "Go (>= 1.26) is needed to build SeaweedFS; install it and retry"
    lock "$BIN_DIR/.weed-build.lock"
    installed && return 0   # another caller finished the build while we waited

    say "building SeaweedFS $SEAWEEDFS_COMMIT (first run only, ~6 min on 2 cores, ~2 GB of Go modules)…"
    local t0=$SECONDS tmp src
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    # A plain `go install …/weed@version` is refused because SeaweedFS's go.mod has replace
    # directives, so build inside the downloaded module, where go.mod is the main module.
    # The empty working dir keeps any surrounding go.mod/go.work out of the way.
    src=$(cd "$tmp" && GOWORK=off GOFLAGS='' go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') || true
    [[ -n $src && -d $src/weed ]] || die "could not download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION from the Go module proxy"
    mkdir -p "$BIN_DIR"
    if ! (cd "$src" && CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" \
        go build -trimpath \
            -ldflags "-s -w -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=$SEAWEEDFS_COMMIT" \
            -o "$tmp/weed" ./weed) >"$tmp/build.log" 2>&1; then
        tail -n 30 "$tmp/build.log" >&2
        die "building SeaweedFS failed"
    fi
    # Atomic rename: an interrupted build must never leave a half-written binary behind.
    mv -f "$tmp/weed" "$WEED.partial"
    mv -f "$WEED.partial" "$WEED"
    ln -sfn "$(basename "$WEED")" "$BIN_DIR/weed"
    say "built $WEED in $((SECONDS - t0)) s"
}

read_pid() { if [[ -s $PID_FILE ]]; then cat "$PID_FILE"; fi; }

# The /proc check guards against a stale pid file whose pid was reused by another program.
running_pid() {
    local pid
    pid=$(read_pid)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        local cmd
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
        [[ $cmd == *weed*" server "* ]] || return 1
    fi
    echo "$pid"
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" 2>/dev/null || true; }

# A signed ListBuckets proves the gateway has loaded our credentials; curl < 7.75 cannot
# sign, so there the health probe has to do.
s3_ready() {
    [[ -n ${CURL_HELP:-} ]] || CURL_HELP=$(curl --help all 2>/dev/null || echo none)
    if [[ $CURL_HELP == *--aws-sigv4* ]]; then
        [[ $(http_code --aws-sigv4 "aws:amz:us-east-1:s3" -u "$ACCESS_KEY:$SECRET_KEY" "$ENDPOINT/") == 200 ]]
    else
        [[ $(http_code "$ENDPOINT/healthz") == 200 ]]
    fi
}

# Writes fail with "no free volumes" until the volume server has joined the master.
volumes_ready() {
    local topology
    topology=$(curl -s -m 2 "http://$HOST:$MASTER_PORT/dir/status" 2>/dev/null) || return 1
    [[ $topology =~ \"Free\":[1-9] ]]
}

port_in_use() {
    local port=$1 listeners
    if command -v ss >/dev/null 2>&1; then
        listeners=$(ss -Hltn "sport = :$port" 2>/dev/null) || true
        [[ -n $listeners ]]
    else
        (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null
    fi
}

write_config() {
    [[ $ACCESS_KEY$SECRET_KEY != *[\"\\]* ]] || die "S3_ACCESS_KEY/S3_SECRET_KEY must not contain quotes or backslashes"
    # The file holds the secret key.
    (umask 077 && cat >"$CONFIG_FILE.tmp") <<EOF
{
  "identities": [
    {
      "name": "mm-platform",
      "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
    mv -f "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

remove_leftovers() {
    rm -f "$PID_FILE" "$STATE_DIR/filer.sock" "$STATE_DIR/s3.sock"
    # SeaweedFS puts its gRPC sockets (and, for long state paths, the others) in /tmp, named after our ports.
    rm -f "/tmp/seaweedfs-master-grpc-$((MASTER_PORT + 10000)).sock" \
        "/tmp/seaweedfs-volume-grpc-$((VOLUME_PORT + 10000)).sock" \
        "/tmp/seaweedfs-filer-grpc-$((FILER_PORT + 10000)).sock" \
        "/tmp/seaweedfs-s3-grpc-$((S3_PORT + 10000)).sock" \
        "/tmp/seaweedfs-filer-$FILER_PORT.sock" "/tmp/seaweedfs-s3-$S3_PORT.sock"
}

# Returns 1 on timeout, leaving the process to the caller; exits if it died.
wait_ready() {
    local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3: server exited during startup; last log lines ($LOG_FILE):" >&2
            tail -n 40 "$LOG_FILE" >&2 || true
            remove_leftovers
            exit 1
        fi
        if s3_ready && volumes_ready; then
            return 0
        fi
        sleep 0.5
    done
    echo "s3: endpoint $ENDPOINT not ready after ${START_TIMEOUT}s; last log lines ($LOG_FILE):" >&2
    tail -n 40 "$LOG_FILE" >&2 || true
    return 1
}

start() {
    command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl)"
    install
    lock "$STATE_DIR/.lock"
    local pid t0=$SECONDS
    if pid=$(running_pid); then
        wait_ready "$pid" || die "pid $pid is running but not answering; try '$0 stop' first"
        say "already running on $ENDPOINT (pid $pid)"
        return 0
    fi
    rm -f "$PID_FILE"
    local port
    for port in "$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" \
        $((S3_PORT + 10000)) $((MASTER_PORT + 10000)) $((VOLUME_PORT + 10000)) $((FILER_PORT + 10000)); do
        port_in_use "$port" && die "port $port on $HOST is already in use by another process"
    done

    mkdir -p "$DATA_DIR"
    write_config
    local socket_args=()
    # Unix socket paths are limited to ~107 bytes; past that, SeaweedFS's /tmp default is used.
    if ((${#STATE_DIR} < 90)); then
        socket_args=(-filer.localSocket="$STATE_DIR/filer.sock" -s3.localSocket="$STATE_DIR/s3.sock")
    fi
    {
        echo
        echo "=== $(date -u +%FT%TZ) starting SeaweedFS $SEAWEEDFS_COMMIT"
    } >>"$LOG_FILE"

    # setsid: a Ctrl-C aimed at whoever called `start` (e.g. a test run) must not kill the server.
    # 9>&-: the server must not inherit the lock fd, or every later start/stop would block on it.
    # Growing one volume per collection (not 7) keeps many small test buckets within the slots.
    (cd "$STATE_DIR" && WEED_MASTER_VOLUME_GROWTH_COPY_1=1 exec setsid "$WEED" -logtostderr=true server \
        -ip="$HOST" -ip.bind="$HOST" \
        -dir="$DATA_DIR" \
        -master.port="$MASTER_PORT" -master.volumeSizeLimitMB=64 -master.telemetry=false -master.resumeState=false \
        -volume.port="$VOLUME_PORT" -volume.max=0 -volume.preStopSeconds=0 \
        -filer -filer.port="$FILER_PORT" \
        -s3 -s3.port="$S3_PORT" -s3.config="$CONFIG_FILE" -s3.port.iceberg=0 -s3.port.lance=0 \
        "${socket_args[@]}" \
        </dev/null >>"$LOG_FILE" 2>&1 9>&-) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    if ! wait_ready "$pid"; then
        # A half-started server would only confuse the next start; leave nothing behind.
        stop_pid "$pid" >/dev/null
        exit 1
    fi
    say "started on $ENDPOINT (pid $pid) in $((SECONDS - t0)) s"
}

stop() {
    lock "$STATE_DIR/.lock"
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        say "not running"
        return 0
    fi
    stop_pid "$pid"
}

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    # After recent writes the filer spends up to 15 s retrying a metadata-log flush to the
    # volume server it has already stopped; objects and the filer store are on disk by then,
    # so waiting that out only slows every test run down.
    local i
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    local how=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        how=", SIGKILL after ${STOP_TIMEOUT}s"
    fi
    remove_leftovers
    say "stopped (pid $pid$how)"
}

status() {
    local pid
    if pid=$(running_pid); then
        if s3_ready; then
            say "running on $ENDPOINT (pid $pid)"
            return 0
        fi
        say "pid $pid is alive but $ENDPOINT does not answer (starting, or see $LOG_FILE)"
        return 1
    fi
    say "not running"
    return 3
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
install)
    install
    say "installed $WEED ($("$WEED" version 2>/dev/null | head -n 1))"
    ;;
*)
    echo "usage: $0 start|stop|status|install" >&2
    exit 2
    ;;
esac
