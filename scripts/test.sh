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

# Schemathesis (pinned, from PyPI) fuzzes the API against its OpenAPI document. It gets its own
# venv on CPython 3.13 or later: under 3.11 its runs here crashed inside `ast.parse`
# ("AST constructor recursion depth mismatch", CPython gh-106905).
SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_VENV="$ROOT/.local/schemathesis"
newest_python() {
    local candidate
    for candidate in python3.15 python3.14 python3.13; do
        if "$candidate" -c '' >/dev/null 2>&1; then
            command -v "$candidate"
            return
        fi
    done
    if have pyenv; then
        while IFS= read -r candidate; do
            if "$candidate/bin/python3" -c '' >/dev/null 2>&1; then
                echo "$candidate/bin/python3"
                return
            fi
        done < <(find "$(pyenv root)/versions" -mindepth 1 -maxdepth 1 -name '3.1[3-9]*' 2>/dev/null | sort -rV)
    fi
    return 1
}
if [ "$("$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    SCHEMATHESIS_PYTHON=$(newest_python) ||
        die "schemathesis needs CPython 3.13 or later (python3.13 on PATH, or a pyenv version)"
    log "installing schemathesis $SCHEMATHESIS_VERSION into .local/schemathesis ($("$SCHEMATHESIS_PYTHON" --version))"
    rm -rf "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_PYTHON" -m venv "$SCHEMATHESIS_VENV" ||
        die "cannot create a Python venv in .local/schemathesis"
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" ||
        die "pip could not install schemathesis $SCHEMATHESIS_VERSION"
fi
export POTENTIA_SCHEMATHESIS="$SCHEMATHESIS_VENV/bin/schemathesis"

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
