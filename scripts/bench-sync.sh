#!/usr/bin/env bash
# The side-by-side sync benchmark of issue 4 (docs/benchmarks/sync.md): our server against
# @y/websocket-server (npm) and y-sweet (crates.io), same scenarios, same load generator
# (clients/rust, `potentia-load`), one table with the ratios at the end.
#
#   scripts/bench-sync.sh            everything (about 25 minutes on 2 cores)
#   BENCH_SERVERS="potentia node" BENCH_SCENARIOS="one-canvas trace" scripts/bench-sync.sh
#
# It provisions Postgres (scripts/postgres.sh), builds the release binaries (honours
# CARGO_TARGET_DIR, default target/), installs the peers into .local/peers/ once, starts each
# server on a free loopback port — a fresh instance for every scenario, ours on a fresh
# database — runs the scenario, stops it, and prints the table. Figures and server logs stay in
# .local/bench/<time>/ (BENCH_OUT overrides).
#
# Knobs (environment): BENCH_SECS (30) measured seconds of the fan-out scenarios,
# BENCH_CLIENTS (50) clients on the one canvas, BENCH_RATE (10) edits/s per client,
# BENCH_CANVASES (50) canvases × 2 clients in the many-canvases scenario,
# BENCH_RAMP_CLIENTS (4), BENCH_RAMP_START (250) edits/s, BENCH_RAMP_FACTOR (1.5),
# BENCH_RAMP_STEP_SECS (8), BENCH_MEM_CANVASES (200),
# BENCH_TRACE (../shared/traces/automerge-paper.json.gz), BENCH_TRACE_MAX_SECS (300: a slower
# replay is reported with how far it got), BENCH_KEEP_DB=1 keeps our database.
# A scenario that fails is reported (load-stderr.log) and the run goes on.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(repo_root)
cd "$ROOT"

SERVERS=${BENCH_SERVERS:-potentia node ysweet}
SCENARIOS=${BENCH_SCENARIOS:-one-canvas many-canvases max-rate memory memory-no-clients trace}
SECS=${BENCH_SECS:-30}
CLIENTS=${BENCH_CLIENTS:-50}
RATE=${BENCH_RATE:-10}
CANVASES=${BENCH_CANVASES:-50}
RAMP_CLIENTS=${BENCH_RAMP_CLIENTS:-4}
RAMP_START=${BENCH_RAMP_START:-250}
RAMP_STEP_SECS=${BENCH_RAMP_STEP_SECS:-8}
RAMP_FACTOR=${BENCH_RAMP_FACTOR:-1.5}
MEM_CANVASES=${BENCH_MEM_CANVASES:-200}
TRACE=${BENCH_TRACE:-$ROOT/../shared/traces/automerge-paper.json.gz}
TRACE_MAX_SECS=${BENCH_TRACE_MAX_SECS:-300}
OUT=${BENCH_OUT:-$ROOT/.local/bench/$(date +%Y%m%d-%H%M%S)}
RESULTS=$OUT/results.jsonl
PEERS=$ROOT/.local/peers
NODE_SERVER_VERSION=0.1.1
YSWEET_VERSION=0.9.1
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

mkdir -p "$OUT"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

# ---------------------------------------------------------------------------------------
# Provisioning
# ---------------------------------------------------------------------------------------

"$ROOT/scripts/postgres.sh" up
ADMIN_URL=$("$ROOT/scripts/postgres.sh" url)
PG_DATA=$ROOT/.local/pg/data

log "building the release binaries (potentia, potentia-load) into ${TARGET_DIR}"
# The sqlx macros check queries against DATABASE_URL when SQLX_OFFLINE=false, else .sqlx/.
DATABASE_URL=${DATABASE_URL:-$ADMIN_URL} cargo build --release --quiet \
    -p potentia-server --bin potentia -p potentia-client --bin potentia-load
LOAD=$BIN/potentia-load

install_peers() {
    local want_node=0 want_ysweet=0 s
    for s in $SERVERS; do
        [ "$s" = node ] && want_node=1
        [ "$s" = ysweet ] && want_ysweet=1
    done
    if [ "$want_node" = 1 ]; then
        have node || die "node is needed for @y/websocket-server (apt-get install nodejs npm)"
        local pkg=$PEERS/node/node_modules/@y/websocket-server/package.json
        if ! [ -f "$pkg" ] || ! grep -q "\"version\": \"$NODE_SERVER_VERSION\"" "$pkg"; then
            log "npm install @y/websocket-server@$NODE_SERVER_VERSION yjs into .local/peers/node"
            mkdir -p "$PEERS/node"
            [ -f "$PEERS/node/package.json" ] ||
                printf '{"name":"potentia-bench-peers","private":true}\n' >"$PEERS/node/package.json"
            (cd "$PEERS/node" && npm install --no-audit --no-fund --loglevel=error \
                "@y/websocket-server@$NODE_SERVER_VERSION" yjs >&2)
        fi
    fi
    if [ "$want_ysweet" = 1 ]; then
        if ! [ -x "$PEERS/ysweet/bin/y-sweet" ] ||
            ! grep -qs "\"y-sweet $YSWEET_VERSION " "$PEERS/ysweet/.crates.toml"; then
            log "cargo install y-sweet $YSWEET_VERSION into .local/peers/ysweet (a few minutes)"
            # Without --locked it does not compile against newer tokio.
            cargo install y-sweet --version "$YSWEET_VERSION" --locked --root "$PEERS/ysweet" >&2
        fi
    fi
}
install_peers

# ---------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------

DB=potentia_bench_$(date +%Y%m%d%H%M%S)_$$
DB_URL=${ADMIN_URL%/*}/$DB
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
DB_CREATED=0
SERVER_PID=""
PORT=""
YSWEET_STORE=""

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 20000))
        tcp_open 127.0.0.1 "$port" || {
            printf '%s' "$port"
            return 0
        }
    done
    die "no free loopback port found"
}

wait_port() {
    local deadline=$((SECONDS + 60))
    until tcp_open 127.0.0.1 "$PORT"; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server died at start; see $1"
        [ "$SECONDS" -lt "$deadline" ] || die "the server did not listen on $PORT within 60 s; see $1"
        sleep 0.2
    done
}

# start_server KIND NAME [fresh|keep]: starts KIND on a free port, sets SERVER_PID and PORT.
# Our server's unload grace: long (rooms stay loaded while measuring), except for the trace,
# where a short one lets the idle room unload and compact.
start_server() {
    local kind=$1 name=$2 mode=${3:-fresh} logf
    PORT=$(free_port)
    logf=$OUT/$kind-$name.log
    case $kind in
    potentia)
        if [ "$DB_CREATED" = 0 ]; then
            "$LOAD" create-db --admin-url "$ADMIN_URL" --name "$DB"
            DB_CREATED=1
        fi
        local grace=3600
        [ "$name" = trace ] && grace=2
        # The per-connection update limit (50/s, burst 250) is raised: a replay is one client
        # typing far faster than a person, and the ramp offers thousands of edits/s per client.
        env DATABASE_URL="$DB_URL" POTENTIA_BIND="127.0.0.1:$PORT" POTENTIA_MODE=dev \
            POTENTIA_JWT_SECRET="$JWT_SECRET" POTENTIA_ACCESS_TOKEN_TTL_SECS=86400 \
            POTENTIA_AUTH_RATE_PER_IP=10000 \
            POTENTIA_SYNC_UPDATES_PER_SECOND=1000000 POTENTIA_SYNC_UPDATE_BURST=1000000 \
            POTENTIA_SYNC_MAX_CONNECTIONS_PER_USER=100000 \
            POTENTIA_SYNC_MAX_CONNECTIONS_PER_CANVAS=100000 \
            POTENTIA_SYNC_UNLOAD_GRACE_SECS=$grace RUST_LOG="${BENCH_RUST_LOG:-warn}" \
            "$BIN/potentia" serve >>"$logf" 2>&1 &
        SERVER_PID=$!
        ;;
    node)
        env HOST=127.0.0.1 PORT="$PORT" \
            node "$PEERS/node/node_modules/@y/websocket-server/src/server.js" >>"$logf" 2>&1 &
        SERVER_PID=$!
        ;;
    ysweet)
        if [ "$mode" = fresh ]; then
            YSWEET_STORE=$OUT/ysweet-store-$name
            rm -rf "$YSWEET_STORE"
            mkdir -p "$YSWEET_STORE"
        fi
        "$PEERS/ysweet/bin/y-sweet" serve "$YSWEET_STORE" --host 127.0.0.1 --port "$PORT" \
            >>"$logf" 2>&1 &
        SERVER_PID=$!
        ;;
    *) die "unknown server $kind" ;;
    esac
    wait_port "$logf"
    if [ "$kind" = potentia ]; then
        local deadline=$((SECONDS + 60))
        until curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
            [ "$SECONDS" -lt "$deadline" ] || die "our server is not healthy; see $logf"
            sleep 0.2
        done
    fi
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

cleanup() {
    stop_server
    if [ "$DB_CREATED" = 1 ] && [ "${BENCH_KEEP_DB:-0}" != 1 ]; then
        "$LOAD" drop-db --admin-url "$ADMIN_URL" --name "$DB" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# load KIND SCENARIO SUBCOMMAND ARGS...: runs the load generator against the running server.
load() {
    local kind=$1 scenario=$2 sub=$3
    shift 3
    local -a extra=()
    if [ "$kind" = potentia ]; then
        extra+=(--metrics-url "http://127.0.0.1:$PORT/metrics")
        if [ -d "$PG_DATA" ]; then
            extra+=(--pg-data "$PG_DATA" --pg-database "$DB")
        fi
    fi
    log "$kind: $scenario"
    if ! "$LOAD" "$sub" --kind "$kind" --url "http://127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
        --scenario "$scenario" --out "$RESULTS" "${extra[@]}" "$@" \
        >>"$OUT/load.log" 2>>"$OUT/load-stderr.log"; then
        warn "$kind: $scenario failed: $(tail -n 1 "$OUT/load-stderr.log")"
    fi
}

run_scenario() {
    local kind=$1 scenario=$2
    start_server "$kind" "$scenario"
    case $scenario in
    one-canvas)
        load "$kind" one-canvas fanout --canvases 1 --clients "$CLIENTS" --rate "$RATE" --secs "$SECS"
        ;;
    many-canvases)
        load "$kind" many-canvases fanout --canvases "$CANVASES" --clients 2 --rate "$RATE" --secs "$SECS"
        ;;
    max-rate)
        load "$kind" max-rate ramp --clients "$RAMP_CLIENTS" --start-rate "$RAMP_START" \
            --factor "$RAMP_FACTOR" --step-secs "$RAMP_STEP_SECS"
        ;;
    memory)
        load "$kind" memory memory --canvases "$MEM_CANVASES"
        ;;
    memory-no-clients)
        load "$kind" memory-no-clients memory --canvases "$MEM_CANVASES" --sequential
        ;;
    trace)
        [ -f "$TRACE" ] || die "no trace at $TRACE (BENCH_TRACE)"
        local -a extra=()
        [ "$kind" = potentia ] && extra+=(--database-url "$DB_URL")
        [ "$kind" = ysweet ] && extra+=(--ysweet-store "$YSWEET_STORE")
        load "$kind" trace trace --trace "$TRACE" --state-file "$OUT/trace-$kind.json" \
            --max-secs "$TRACE_MAX_SECS" "${extra[@]}"
        # The text again from a fresh client after a restart (the Node server keeps nothing).
        if [ -f "$OUT/trace-$kind.json" ]; then
            stop_server
            start_server "$kind" trace keep
            load "$kind" trace-verify trace-verify --state-file "$OUT/trace-$kind.json"
        fi
        ;;
    *) die "unknown scenario $scenario" ;;
    esac
    stop_server
}

log "results in ${OUT#"$ROOT"/}"
for scenario in $SCENARIOS; do
    for kind in $SERVERS; do
        run_scenario "$kind" "$scenario"
    done
done

printf '\nSync benchmark, %s, %s cores (%s), load average at the end: %s\n\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" \
    "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)" "$(cut -d' ' -f1-3 /proc/loadavg)"
"$LOAD" report "$RESULTS" | tee "$OUT/table.md"
