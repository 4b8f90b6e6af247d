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

# Independent peers for cross-checks: Python's icalendar parser reads our .ics exports, and
# python-dateutil is the recurrence benchmark's peer. A private venv keeps them off the system.
PY_VENV="$ROOT/.local/py"
if ! "$PY_VENV/bin/python" -c 'import icalendar, dateutil' 2>/dev/null; then
    log "installing icalendar and python-dateutil into .local/py"
    python3 -m venv "$PY_VENV" || die "cannot create a Python venv in .local/py (is python3-venv installed?)"
    "$PY_VENV/bin/pip" install --quiet --disable-pip-version-check icalendar python-dateutil ||
        die "pip could not install icalendar and python-dateutil"
fi
export POTENTIA_PYTHON="$PY_VENV/bin/python"
export POTENTIA_REQUIRE_PY_ICALENDAR=1

# The stock npm Yjs clients for the protocol-compatibility tests (server/tests/js_clients.rs).
# npm ci leaves node_modules/.package-lock.json behind: reinstall when it predates the lock.
JS_TESTS="$ROOT/tests/js"
if [ "$JS_TESTS/package-lock.json" -nt "$JS_TESTS/node_modules/.package-lock.json" ]; then
    have npm || die "npm (Node.js 20 or later) is needed for the JS client tests in tests/js"
    log "installing the npm Yjs clients into tests/js/node_modules"
    npm ci --prefix "$JS_TESTS" --no-audit --no-fund --loglevel=error ||
        die "npm ci failed in tests/js"
fi

# The local models (all-MiniLM-L6-v2, SmolLM2-135M-Instruct) that ai/tests/local_models.rs and
# the semantic search tests run. Test-only names: the server's own POTENTIA_AI_* variables stay
# unset, so tests that parse the server's flags see the defaults.
"$ROOT/scripts/models.sh" up
POTENTIA_TEST_EMBEDDING_MODEL_DIR=$("$ROOT/scripts/models.sh" embedding-dir)
POTENTIA_TEST_CHAT_GGUF=$("$ROOT/scripts/models.sh" chat-gguf)
export POTENTIA_TEST_EMBEDDING_MODEL_DIR POTENTIA_TEST_CHAT_GGUF
unset POTENTIA_AI_EMBEDDING_PROVIDER POTENTIA_AI_EMBEDDING_MODEL_DIR POTENTIA_AI_CHAT_PROVIDER POTENTIA_AI_CHAT_GGUF

log "running the Rust test suites"
cargo test --workspace --locked "$@"
