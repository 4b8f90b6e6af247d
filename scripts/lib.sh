# shellcheck shell=bash
# Shared helpers for the provisioning scripts (scripts/postgres.sh, scripts/redis.sh,
# scripts/env.sh). Source it; it defines functions and variables only and never
# changes the caller's shell options.

# Everything goes to stderr so that stdout stays clean for `url` and `eval`.
log() { printf '[provision] %s\n' "$*" >&2; }
warn() { printf '[provision] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[provision] ERROR: %s\n' "$*" >&2
    exit 1
}

# Absolute path of the repository root: the parent of the folder holding this file.
# (Independent of the caller's working directory and of git being present.)
repo_root() {
    (cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
}

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# now_ms: milliseconds since the epoch (for timings in log lines).
now_ms() { date +%s%3N; }

# tcp_open HOST PORT: true when something accepts TCP connections there.
# shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
tcp_open() {
    local host=$1 port=$2
    if have timeout; then
        timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
    fi
}
