#!/usr/bin/env bash
# Find or start the Redis used by Potentia's dev and test runs.
#
#   scripts/redis.sh [up]   make sure something answers PING at REDIS_URL; start one if not
#   scripts/redis.sh status exit 0 when REDIS_URL answers PING
#   scripts/redis.sh url    print the REDIS_URL
#
# REDIS_URL defaults to redis://127.0.0.1:6379 (these machines normally run one there).
# When nothing listens there and the host is local, redis-server (installed with apt-get
# when missing, root only) is started daemonized on that host/port without persistence;
# its log and pid file go to <repo>/.local/redis/.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(repo_root)
REDIS_DIR=$ROOT/.local/redis
URL=${REDIS_URL:-redis://127.0.0.1:6379}
WAIT_SECONDS=15

usage() {
    cat >&2 <<'EOF'
usage: scripts/redis.sh [up|status|url]
  up      ensure Redis answers PING at $REDIS_URL (default redis://127.0.0.1:6379), starting it if needed
  status  exit 0 if Redis answers PING
  url     print the REDIS_URL
EOF
}

redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# Parse redis[s]://[[user]:password@]host[:port][/db]
R_SCHEME="" R_USER="" R_PASS="" R_HOST="" R_PORT=""
parse_url() {
    local re='^(rediss?)://(([^:@/]*)(:([^@/]*))?@)?(\[[^]/]+\]|[^:/?@]+)(:([0-9]+))?(/[0-9]*)?(\?.*)?$'
    [[ $URL =~ $re ]] || die "cannot parse REDIS_URL=$(redact "$URL") (expected redis://[:password@]host[:port][/db])"
    R_SCHEME=${BASH_REMATCH[1]}
    R_USER=${BASH_REMATCH[3]}
    R_PASS=${BASH_REMATCH[5]}
    R_HOST=${BASH_REMATCH[6]}
    R_PORT=${BASH_REMATCH[8]:-6379}
    R_HOST=${R_HOST#[}
    R_HOST=${R_HOST%]}
    if [ -n "${BASH_REMATCH[2]}" ] && [ -z "${BASH_REMATCH[4]}" ]; then
        # redis://secret@host: a lone userinfo is the password (as redis-cli reads it)
        R_PASS=$R_USER
        R_USER=""
    fi
}

is_local_host() {
    case $R_HOST in
    127.* | localhost | ::1 | 0.0.0.0) return 0 ;;
    *) return 1 ;;
    esac
}

bind_addr() {
    case $R_HOST in
    localhost) printf '127.0.0.1' ;;
    *) printf '%s' "$R_HOST" ;;
    esac
}

# ping: prints the reply to PING (PONG when healthy); non-zero if no reply at all.
ping_redis() {
    if have redis-cli && [ "$R_SCHEME" = redis ]; then
        local -a args=(-h "$R_HOST" -p "$R_PORT")
        [ -n "$R_USER" ] && args+=(--user "$R_USER")
        [ -n "$R_PASS" ] && args+=(-a "$R_PASS" --no-auth-warning)
        timeout 5 redis-cli "${args[@]}" ping 2>&1
    elif [ "$R_SCHEME" = redis ]; then
        # RESP inline commands over bash's /dev/tcp
        # shellcheck disable=SC2016 # expanded by the inner bash
        timeout 5 bash -c '
            exec 3<>"/dev/tcp/$0/$1" || exit 1
            cr=$(printf "\r")
            if [ -n "$3" ]; then
                if [ -n "$2" ]; then printf "AUTH %s %s\r\n" "$2" "$3" >&3; else printf "AUTH %s\r\n" "$3" >&3; fi
                IFS= read -r line <&3 || exit 1
                case $line in +OK*) ;; *) printf "%s\n" "${line%"$cr"}"; exit 0 ;; esac
            fi
            printf "PING\r\n" >&3
            IFS= read -r line <&3 || exit 1
            line=${line%"$cr"}
            printf "%s\n" "${line#+}"
        ' "$R_HOST" "$R_PORT" "$R_USER" "$R_PASS" 2>/dev/null
    else
        # rediss:// (TLS): redis-cli would need --tls and certificates; settle for the port.
        tcp_open "$R_HOST" "$R_PORT" && printf 'PONG\n'
    fi
}

answers_pong() {
    local reply
    reply=$(ping_redis) || return 1
    [ "$reply" = PONG ]
}

install_redis() {
    have redis-server && return 0
    is_root || die "redis-server is not installed and nothing answers at $(redact "$URL"); install it (apt-get install redis-server) or point REDIS_URL at a running Redis"
    have apt-get || die "redis-server is not installed and apt-get is not available to install it"
    log "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed (is the Debian mirror reachable?)"
    apt-get install -y -qq redis-server >&2 || die "apt-get install redis-server failed"
    have redis-server || die "redis-server still not found after apt-get install"
}

start_redis() {
    local t0 startlog pidfile logfile
    t0=$(now_ms)
    mkdir -p "$REDIS_DIR"
    startlog=$REDIS_DIR/redis-$R_PORT.start.log
    pidfile=$REDIS_DIR/redis-$R_PORT.pid
    logfile=$REDIS_DIR/redis-$R_PORT.log
    local -a args=(
        --bind "$(bind_addr)" --port "$R_PORT"
        --save "" --appendonly no
        --daemonize yes --pidfile "$pidfile" --logfile "$logfile" --dir "$REDIS_DIR"
    )
    if [ -n "$R_PASS" ]; then
        if [ -n "$R_USER" ] && [ "$R_USER" != default ]; then
            die "REDIS_URL names user '$R_USER': only the default user can be set up when starting Redis here"
        fi
        args+=(--requirepass "$R_PASS")
    fi
    log "starting redis-server on $(bind_addr):$R_PORT (no persistence; log: ${logfile#"$ROOT"/})"
    if ! redis-server "${args[@]}" </dev/null >"$startlog" 2>&1; then
        cat "$startlog" >&2 || true
        die "redis-server failed to start on $(bind_addr):$R_PORT"
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    until answers_pong; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            cat "$startlog" >&2 || true
            [ -f "$logfile" ] && tail -n 20 "$logfile" >&2
            die "redis-server on $(bind_addr):$R_PORT does not answer PING after ${WAIT_SECONDS}s"
        fi
        sleep 0.1
    done
    rm -f "$startlog"
    log "redis-server started in $(($(now_ms) - t0)) ms (pid $(cat "$pidfile" 2>/dev/null || echo '?'); stop: redis-cli -p $R_PORT${R_PASS:+ -a <password>} shutdown nosave)"
}

cmd_up() {
    parse_url
    if tcp_open "$R_HOST" "$R_PORT"; then
        local reply
        reply=$(ping_redis || true)
        reply=${reply//$'\n'/ }
        [ "$reply" = PONG ] ||
            die "something listens at $R_HOST:$R_PORT but does not answer PING with PONG (reply: '${reply:-none}'); is REDIS_URL=$(redact "$URL") right (password)?"
        log "using Redis at $(redact "$URL")"
        return 0
    fi
    is_local_host ||
        die "nothing answers at REDIS_URL=$(redact "$URL") and $R_HOST is not this machine, so it cannot be started here"
    [ "$R_SCHEME" = redis ] || die "nothing answers at $(redact "$URL"); starting a TLS (rediss://) Redis is not supported"
    install_redis
    # Installing the Debian package may itself have started a server on the default port.
    if answers_pong; then
        log "using Redis at $(redact "$URL")"
        return 0
    fi
    start_redis
}

cmd_status() {
    parse_url
    if answers_pong; then
        log "Redis answers PING at $(redact "$URL")"
        return 0
    fi
    log "no Redis answering at $(redact "$URL")"
    return 1
}

main() {
    local cmd=${1:-up}
    case $cmd in
    up) cmd_up ;;
    status) cmd_status ;;
    url) printf '%s\n' "$URL" ;;
    -h | --help | help) usage ;;
    *)
        usage
        die "unknown subcommand '$cmd'"
        ;;
    esac
}

main "$@"
