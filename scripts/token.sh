#!/usr/bin/env bash
# Prints an access token the dev server (scripts/serve.sh) accepts.
#   scripts/token.sh [--user UUID] [--email EMAIL] [--ttl-secs N]
# With --email, the token names the account that has this email in the dev database (the one
# serve.sh runs on, or DATABASE_URL); when none has it, the first request creates one.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(repo_root)
cd "$ROOT"

if [ -z "${POTENTIA_JWT_SECRET:-}" ]; then
    [ -s "$ROOT/.local/dev-jwt-secret" ] || die "no dev JWT secret yet: start the server once with scripts/serve.sh, or set POTENTIA_JWT_SECRET"
    POTENTIA_JWT_SECRET=$(cat "$ROOT/.local/dev-jwt-secret")
    export POTENTIA_JWT_SECRET
fi
if [ -z "${DATABASE_URL:-}" ] && "$ROOT/scripts/postgres.sh" status 2>/dev/null; then
    DATABASE_URL=$("$ROOT/scripts/postgres.sh" url)
    export DATABASE_URL
fi
exec cargo run --quiet -p potentia-server --bin potentia -- token "$@"
