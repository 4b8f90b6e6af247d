#!/usr/bin/env bash
# Runs every test of the project against real services: provisions Postgres with pgvector
# (or uses DATABASE_URL) and Redis (REDIS_URL, started if absent), then runs the Rust suites.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(repo_root)
cd "$ROOT"

# shellcheck source-path=SCRIPTDIR source=env.sh
source "$ROOT/scripts/env.sh"

log "running the Rust test suites"
cargo test --workspace --locked "$@"
