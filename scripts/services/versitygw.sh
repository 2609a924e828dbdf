#!/usr/bin/env bash
# Local S3 server that ENFORCES Object Lock (versitygw, posix backend) on 127.0.0.1, for the
# object-lock tests: SeaweedFS (scripts/services/s3.sh) accepts lock settings but does not enforce them.
#
#   scripts/services/versitygw.sh start|stop|restart|status|install
#
# Environment (all optional):
#   VERSITYGW_PORT (18334)  VERSITYGW_ACCESS_KEY (mmlock)  VERSITYGW_SECRET_KEY (mmlock-secret)
#   MM_SERVICES_DIR (<repo>/.mm/services)  VERSITYGW_START_TIMEOUT (30)  VERSITYGW_STOP_TIMEOUT (5)
#   XDG_CACHE_HOME (~/.cache): the binary lives in $XDG_CACHE_HOME/mm-platform/versitygw-<version>/bin
#
# Clients: endpoint http://127.0.0.1:$VERSITYGW_PORT, region us-east-1, path-style addressing, the keys
# above (the gateway's root account). Tests: export MM_TEST_LOCK_S3_ENDPOINT=http://127.0.0.1:18334.
# Data survives stop/start; delete the state dir for a clean slate.
set -euo pipefail

VERSITYGW_MODULE=github.com/versity/versitygw
VERSITYGW_VERSION=v1.8.0

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${MM_SERVICES_DIR:-$REPO_DIR/.mm/services}/versitygw
# Buckets are the top-level folders of DATA_DIR; older object versions live in VERSIONS_DIR, which
# must be outside DATA_DIR (or it would show up as a bucket).
DATA_DIR=$STATE_DIR/data
VERSIONS_DIR=$STATE_DIR/versions
LOG_FILE=$STATE_DIR/versitygw.log
PID_FILE=$STATE_DIR/versitygw.pid

# The version in the path lets a version bump rebuild without clobbering a running binary.
BIN_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/mm-platform/versitygw-$VERSITYGW_VERSION/bin
VERSITYGW=$BIN_DIR/versitygw

HOST=127.0.0.1
PORT=${VERSITYGW_PORT:-18334}
ACCESS_KEY=${VERSITYGW_ACCESS_KEY:-mmlock}
SECRET_KEY=${VERSITYGW_SECRET_KEY:-mmlock-secret}
START_TIMEOUT=${VERSITYGW_START_TIMEOUT:-30}
STOP_TIMEOUT=${VERSITYGW_STOP_TIMEOUT:-5}
ENDPOINT=http://$HOST:$PORT
HEALTH_PATH=/health

say() { echo "versitygw: $*"; }
die() { echo "versitygw: error: $*" >&2; exit 1; }

# Serialises concurrent callers (e.g. parallel test workers all calling start).
lock() {
    local file=$1
    mkdir -p "$(dirname "$file")"
    exec 9>"$file"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
}

installed() { [[ -x $VERSITYGW ]]; }

install() {
    installed && return 0
    command -v go >/dev/null 2>&1 || die "Go (>= 1.25) is needed to build versitygw; install it and retry"
    lock "$BIN_DIR/.build.lock"
    installed && return 0   # another caller finished the build while we waited

    say "building versitygw $VERSITYGW_VERSION (first run only, ~2 min on 2 cores)…"
    local t0=$SECONDS tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    # The empty working dir keeps any surrounding go.mod/go.work out of the way; GOBIN points at a
    # temp dir so that an interrupted build never leaves a half-written binary in BIN_DIR.
    if ! (cd "$tmp" && CGO_ENABLED=0 GOWORK=off GOFLAGS='-buildvcs=false' GOBIN="$tmp/bin" \
        go install -trimpath -ldflags "-s -w -X main.Version=$VERSITYGW_VERSION" \
            "$VERSITYGW_MODULE/cmd/versitygw@$VERSITYGW_VERSION") >"$tmp/build.log" 2>&1; then
        tail -n 30 "$tmp/build.log" >&2
        die "building $VERSITYGW_MODULE@$VERSITYGW_VERSION failed (is the Go module proxy reachable?)"
    fi
    mkdir -p "$BIN_DIR"
    mv -f "$tmp/bin/versitygw" "$VERSITYGW.partial"
    mv -f "$VERSITYGW.partial" "$VERSITYGW"
    say "built $VERSITYGW in $((SECONDS - t0)) s"
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
        [[ $cmd == *versitygw*" posix "* ]] || return 1
    fi
    echo "$pid"
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" 2>/dev/null || true; }

# A signed ListBuckets proves the gateway accepts our credentials (versitygw insists on the
# payload-hash header, which curl's signer does not add); curl < 7.75 cannot sign, so there the
# health endpoint has to do.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_ready() {
    [[ -n ${CURL_HELP:-} ]] || CURL_HELP=$(curl --help all 2>/dev/null || echo none)
    if [[ $CURL_HELP == *--aws-sigv4* ]]; then
        [[ $(http_code --aws-sigv4 "aws:amz:us-east-1:s3" -u "$ACCESS_KEY:$SECRET_KEY" \
            -H "x-amz-content-sha256: $EMPTY_SHA256" "$ENDPOINT/") == 200 ]]
    else
        [[ $(http_code "$ENDPOINT$HEALTH_PATH") == 200 ]]
    fi
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

# Returns 1 on timeout, leaving the process to the caller; exits if it died.
wait_ready() {
    local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "versitygw: server exited during startup; last log lines ($LOG_FILE):" >&2
            tail -n 40 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            exit 1
        fi
        if s3_ready; then
            return 0
        fi
        sleep 0.2
    done
    echo "versitygw: endpoint $ENDPOINT not ready after ${START_TIMEOUT}s; last log lines ($LOG_FILE):" >&2
    tail -n 40 "$LOG_FILE" >&2 || true
    return 1
}

start() {
    command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl)"
    command -v setsid >/dev/null 2>&1 || die "setsid is needed (apt-get install util-linux)"
    [[ $PORT =~ ^[0-9]+$ ]] || die "VERSITYGW_PORT must be a port number, not '$PORT'"
    [[ -n $ACCESS_KEY && -n $SECRET_KEY ]] || die "VERSITYGW_ACCESS_KEY and VERSITYGW_SECRET_KEY must not be empty"
    install
    lock "$STATE_DIR/.lock"
    local pid t0=$SECONDS
    if pid=$(running_pid); then
        if [[ -r /proc/$pid/cmdline && $(tr '\0' ' ' <"/proc/$pid/cmdline") != *" --port $HOST:$PORT "* ]]; then
            die "pid $pid already serves $STATE_DIR on another port; stop it first, or use another MM_SERVICES_DIR"
        fi
        wait_ready "$pid" || die "pid $pid is running but not answering; try '$0 stop' first"
        say "already running on $ENDPOINT (pid $pid)"
        return 0
    fi
    rm -f "$PID_FILE"
    port_in_use "$PORT" && die "port $PORT on $HOST is already in use by another process (set VERSITYGW_PORT)"

    mkdir -p "$DATA_DIR" "$VERSIONS_DIR"
    {
        echo
        echo "=== $(date -u +%FT%TZ) starting versitygw $VERSITYGW_VERSION"
    } >>"$LOG_FILE"

    # The root keys go in through the environment, not argv, so `ps` does not show the secret.
    # Every other setting is a flag; versitygw also reads VGW_* (and LOGFILE, WEBHOOK, ROOT_*)
    # variables, so a caller's environment must not leak in and change the server.
    local var
    for var in $(compgen -e); do
        case $var in
        VGW_* | ROOT_ACCESS_KEY* | ROOT_SECRET* | LOGFILE | WEBHOOK) unset "$var" ;;
        esac
    done
    # setsid: a Ctrl-C aimed at whoever called `start` (e.g. a test run) must not kill the server.
    # 9>&-: the server must not inherit the lock fd, or every later start/stop would block on it.
    # Posix backend: object lock is on per bucket (CreateBucket with ObjectLockEnabledForBucket),
    # and needs versioning, which the posix backend only offers with --versioning-dir.
    (cd "$STATE_DIR" && ROOT_ACCESS_KEY_ID=$ACCESS_KEY ROOT_SECRET_ACCESS_KEY=$SECRET_KEY exec setsid "$VERSITYGW" \
        --port "$HOST:$PORT" --region us-east-1 --health "$HEALTH_PATH" --quiet \
        posix --versioning-dir "$VERSIONS_DIR" "$DATA_DIR" \
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
    local pid=$1 i how=""
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        how=", SIGKILL after ${STOP_TIMEOUT}s"
    fi
    rm -f "$PID_FILE"
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
restart)
    stop
    start
    ;;
status) status ;;
install)
    install
    say "installed $VERSITYGW ($("$VERSITYGW" --version 2>/dev/null | head -n 1 | tr -s ' '))"
    ;;
*)
    echo "usage: $0 start|stop|restart|status|install" >&2
    exit 2
    ;;
esac
