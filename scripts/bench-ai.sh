#!/usr/bin/env bash
# Benchmark of the local models against their reference: all-MiniLM-L6-v2 embedding throughput
# of our candle embedder vs sentence-transformers (PyTorch, CPU) on the same generated texts,
# and SmolLM2-135M-Instruct's time to first token and tokens/s for a 200-token prompt.
#
#   scripts/bench-ai.sh [--texts N]
#
# Both sides run pinned by taskset to the same cores (POTENTIA_BENCH_CORES, default: every
# core), one after the other, from a release build. sentence-transformers is installed into a
# private venv .local/bench-py (PyTorch from PyPI is a few GB: kept out of CI and test.sh).
# Results: a table on stdout; the raw outputs in .local/bench-ai/.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(repo_root)
cd "$ROOT"

TEXTS=10000
while [ $# -gt 0 ]; do
    case $1 in
    --texts)
        if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then die "--texts needs a number"; fi
        TEXTS=$2
        shift 2
        ;;
    *) die "usage: scripts/bench-ai.sh [--texts N]" ;;
    esac
done

OUT=$ROOT/.local/bench-ai
PY_VENV=$ROOT/.local/bench-py
CORES=${POTENTIA_BENCH_CORES:-0-$(($(nproc) - 1))}
have taskset || die "taskset (util-linux) is needed to pin both sides to the same cores"
mkdir -p "$OUT"

"$ROOT/scripts/models.sh" up
eval "$("$ROOT/scripts/models.sh" env)"

if ! "$PY_VENV/bin/python" -c 'import sentence_transformers' 2>/dev/null; then
    log "installing sentence-transformers (with PyTorch, a few GB) into .local/bench-py"
    python3 -m venv "$PY_VENV" || die "cannot create a Python venv in .local/bench-py (is python3-venv installed?)"
    "$PY_VENV/bin/pip" install --quiet --disable-pip-version-check sentence-transformers ||
        die "pip could not install sentence-transformers"
fi

log "building bench_local (release)"
cargo build --release --quiet -p potentia-ai --example bench_local

log "running bench_local on cores $CORES"
taskset -c "$CORES" "$ROOT/target/release/examples/bench_local" --texts "$TEXTS" --out "$OUT" |
    tee "$OUT/rust.txt" >&2
log "running sentence-transformers on cores $CORES"
taskset -c "$CORES" "$PY_VENV/bin/python" "$ROOT/scripts/bench-ai-embed.py" \
    --model-dir "$POTENTIA_AI_EMBEDDING_MODEL_DIR" --texts "$OUT/texts.jsonl" \
    --vectors "$OUT/vectors.jsonl" | tee "$OUT/python.txt" >&2

# figure FILE KEY: the value of a `key=value` line.
figure() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

ours=$(figure "$OUT/rust.txt" local_embed_texts_per_s)
theirs=$(figure "$OUT/python.txt" st_embed_texts_per_s)
if [ -z "$ours" ] || [ -z "$theirs" ]; then
    die "a side printed no throughput (see $OUT/rust.txt and $OUT/python.txt)"
fi
ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')

printf '\nLocal models, %s texts, cores %s (%s)\n\n' "$TEXTS" "$CORES" "$(uname -m)"
printf '| measure | ours (candle) | sentence-transformers | ratio (goal >= 1.0x) |\n'
printf '|---|---:|---:|---:|\n'
printf '| all-MiniLM-L6-v2 embedding, texts/s (batch 32) | %s | %s | %sx |\n' "$ours" "$theirs" "$ratio"
printf '\nVectors: largest component difference %s, lowest cosine %s (first 64 texts)\n\n' \
    "$(figure "$OUT/python.txt" st_max_component_difference)" "$(figure "$OUT/python.txt" st_min_cosine)"
printf '| SmolLM2-135M weights | prompt tokens | time to first token (ms) | tokens/s generated |\n'
printf '|---|---:|---:|---:|\n'
for key in q8_0 q4_0 q4_1; do
    label=$key
    [ "$key" = q4_1 ] && label="q4_1 (as stored)"
    printf '| %s | %s | %s | %s |\n' "$label" \
        "$(figure "$OUT/rust.txt" "local_chat_${key}_prompt_tokens")" \
        "$(figure "$OUT/rust.txt" "local_chat_${key}_ttft_ms")" \
        "$(figure "$OUT/rust.txt" "local_chat_${key}_tokens_per_s")"
done
