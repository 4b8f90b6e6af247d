#!/usr/bin/env bash
# shellcheck shell=bash
# Make sure Postgres (with pgvector) and Redis are up and export DATABASE_URL / REDIS_URL.
#
#   source scripts/env.sh          # exports into the current (bash) shell, prints nothing
#   eval "$(scripts/env.sh)"       # run directly: prints `export ...` lines on stdout
#
# Progress messages go to stderr. A DATABASE_URL / REDIS_URL already set is honoured
# (see scripts/postgres.sh and scripts/redis.sh). When sourced this file does not change
# the shell's options, and on failure it returns non-zero instead of exiting the shell.

__potentia_env() {
    local dir db rd
    dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P) || return 1
    "$dir/postgres.sh" up >&2 || return 1
    db=$("$dir/postgres.sh" url) || return 1
    "$dir/redis.sh" up >&2 || return 1
    rd=$("$dir/redis.sh" url) || return 1
    export DATABASE_URL="$db" REDIS_URL="$rd"
}

__potentia_sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

if (return 0 2>/dev/null); then
    # sourced
    if __potentia_env; then
        unset -f __potentia_env __potentia_sq
    else
        unset -f __potentia_env __potentia_sq
        printf '[provision] ERROR: scripts/env.sh: provisioning failed; DATABASE_URL/REDIS_URL not exported\n' >&2
        return 1
    fi
else
    set -euo pipefail
    __potentia_env || exit 1
    printf 'export DATABASE_URL=%s\n' "$(__potentia_sq "$DATABASE_URL")"
    printf 'export REDIS_URL=%s\n' "$(__potentia_sq "$REDIS_URL")"
fi
