#!/usr/bin/env bash
# Runs the Potentia server on embedded defaults: a provisioned Postgres (or DATABASE_URL),
# in-process fan-out (REDIS_URL only if you set it), no AI keys. Extra arguments go to
# `potentia serve` (see `--help`). In dev mode the JWT secret is kept in .local/dev-jwt-secret
# so that `scripts/token.sh` mints tokens this server accepts.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(repo_root)
cd "$ROOT"

started=$(now_ms)
step() { log "$* ($(($(now_ms) - started)) ms)"; }

step "Postgres"
"$ROOT/scripts/postgres.sh" up
DATABASE_URL=$("$ROOT/scripts/postgres.sh" url)
export DATABASE_URL

# The local models: the embedder is the default when no remote one is configured; the chat
# model is used only with POTENTIA_AI_CHAT_PROVIDER=local. Paths already set are kept.
step "local models"
"$ROOT/scripts/models.sh" up
POTENTIA_AI_EMBEDDING_MODEL_DIR=${POTENTIA_AI_EMBEDDING_MODEL_DIR:-$("$ROOT/scripts/models.sh" embedding-dir)}
POTENTIA_AI_CHAT_GGUF=${POTENTIA_AI_CHAT_GGUF:-$("$ROOT/scripts/models.sh" chat-gguf)}
export POTENTIA_AI_EMBEDDING_MODEL_DIR POTENTIA_AI_CHAT_GGUF

# The binary defaults to production mode; this script is for development.
export POTENTIA_MODE=${POTENTIA_MODE:-dev}
if [ -z "${POTENTIA_JWT_SECRET:-}" ] && [ "$POTENTIA_MODE" = dev ]; then
    secret_file="$ROOT/.local/dev-jwt-secret"
    if [ ! -s "$secret_file" ]; then
        mkdir -p "$ROOT/.local"
        (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n' >"$secret_file")
        log "generated a dev JWT secret in .local/dev-jwt-secret"
    fi
    POTENTIA_JWT_SECRET=$(cat "$secret_file")
    export POTENTIA_JWT_SECRET
fi

# The binary the tests built is this one (same features), so after ./scripts/test.sh this build
# only checks that nothing changed; a fresh tree compiles here, with cargo's progress shown.
step "building the server (nothing to do when it is up to date)"
cargo build -p potentia-server --bin potentia
step "starting potentia serve (migrations, then listening; /health answers when ready)"
exec cargo run --quiet -p potentia-server --bin potentia -- serve "$@"
