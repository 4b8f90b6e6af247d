#!/usr/bin/env bash
# Refreshes .sqlx/, the cache that lets `sqlx::query!` check every query against the schema at
# compile time without a database. Run it after changing a query or a migration.
#   scripts/sqlx-prepare.sh          rewrite .sqlx/
#   scripts/sqlx-prepare.sh --check  fail if .sqlx/ is out of date (CI)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(repo_root)
cd "$ROOT"

mode=${1:-write}
case "$mode" in write | --check) ;; *) die "usage: scripts/sqlx-prepare.sh [--check]" ;; esac

"$ROOT/scripts/postgres.sh" up
admin=$("$ROOT/scripts/postgres.sh" url)

psql_bin=$(command -v psql || true)
if [ -z "$psql_bin" ]; then
    psql_bin=$(find "$ROOT/.local/pg/venv" -path '*pginstall/bin/psql' -print -quit 2>/dev/null || true)
fi
[ -n "$psql_bin" ] || die "psql not found (install postgresql-client, or let scripts/postgres.sh provision .local/pg)"

scratch="potentia_sqlx_$$"
scratch_url=$(sed -E "s#^(postgres(ql)?://[^/]+)/[^?]*#\1/$scratch#" <<<"$admin")
cleanup() { "$psql_bin" -q "$admin" -c "drop database if exists $scratch with (force)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$psql_bin" -q -v ON_ERROR_STOP=1 "$admin" -c "create database $scratch"
for migration in "$ROOT"/migrations/*.sql; do
    "$psql_bin" -q -v ON_ERROR_STOP=1 "$scratch_url" -f "$migration" >/dev/null
done

out=$(mktemp -d)
trap 'cleanup; rm -rf "$out"' EXIT
# Touching the sources makes cargo re-expand every query macro.
find "$ROOT" -path "$ROOT/target" -prune -o -path "$ROOT/.local" -prune -o -name '*.rs' -print0 | xargs -0 touch
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" DATABASE_URL="$scratch_url" \
    cargo check --workspace --all-targets --quiet

if [ "$mode" = --check ]; then
    if ! diff -r -q "$out" "$ROOT/.sqlx" >/dev/null 2>&1; then
        diff -r -q "$out" "$ROOT/.sqlx" >&2 || true
        die ".sqlx/ is out of date: run scripts/sqlx-prepare.sh and commit .sqlx/"
    fi
    log ".sqlx/ is up to date ($(find "$out" -name '*.json' | wc -l) queries)"
else
    rm -rf "$ROOT/.sqlx"
    mkdir -p "$ROOT/.sqlx"
    cp "$out"/*.json "$ROOT/.sqlx/" 2>/dev/null || true
    log "wrote $(find "$ROOT/.sqlx" -name '*.json' | wc -l) query descriptions to .sqlx/"
fi
