"""Recall@10 of each vector datatype on real sentence embeddings, ours vs per-vector min-max.

Usage: python bench/quantization_quality.py [--file F] [--queries N] [--k K]

Reads MiniLM embeddings (the full 6,934-row file under /work/shared when present, else the
repo's 3,000-row fixture), converts them with ftctl's codecs and prints, for each datatype and
metric, recall@k against float32 brute force. int8/uint8 use one scale per field calibrated on
2,000 sampled vectors (ftctl); the baseline scales every vector by its own min/max and drops
the scale (RedisVL's migrator), and is ranked on the stored integers like the server does.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ftctl.plan.codecs import convert_batch, knn_recall, measure_recall
from ftctl.plan.quantization import METRICS, calibrate

REPO = Path(__file__).resolve().parents[1]
FULL = Path("/work/shared/fixtures/embeddings/stdlib-minilm-384.npy")
FIXTURE = REPO / "fixtures" / "embeddings" / "minilm-384-3000.npy"
DATATYPES = ("float16", "bfloat16", "int8", "uint8")
CALIBRATION_ROWS = 2000


def per_vector_min_max(vectors: np.ndarray, target: str) -> np.ndarray:
    """Baseline: q = rint((x - min_v) / (max_v - min_v) * 255) (- 128 for int8), per vector."""
    low = vectors.min(axis=1, keepdims=True)
    span = vectors.max(axis=1, keepdims=True) - low
    span[span == 0] = 1.0
    q: np.ndarray = np.rint((vectors - low) / span * 255.0)
    return q - 128.0 if target == "int8" else q


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=FULL if FULL.exists() else FIXTURE)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    vectors = np.load(args.file).astype(np.float32)
    n, dims = vectors.shape
    rng = np.random.default_rng(args.seed)
    calibration = vectors[rng.choice(n, size=min(CALIBRATION_ROWS, n), replace=False)]
    queries = min(args.queries, n)
    rows = np.sort(rng.choice(n, size=queries, replace=False))
    sys.stdout.write(
        f"{args.file.name}: {n} x {dims} float32; recall@{args.k} vs float32 brute force, "
        f"{queries} queries (self excluded); conv = whole file float32 -> datatype in one batch\n\n"
    )
    header = (
        f"{'datatype':<9} {'metric':<7} {'ftctl':>7} {'min-max':>8} {'max|err|':>9} "
        f"{'conv ms':>8} {'knn ms':>7}  params"
    )
    data = vectors.astype("<f4").tobytes()
    sys.stdout.write(header + "\n" + "-" * len(header) + "\n")
    started = time.perf_counter()
    for datatype in DATATYPES:
        params = calibrate(calibration, datatype) if datatype in ("int8", "uint8") else None
        t0 = time.perf_counter()
        convert_batch(data, "float32", datatype, dims, params)
        convert_ms = (time.perf_counter() - t0) * 1000
        for metric in METRICS:
            t0 = time.perf_counter()
            ours = measure_recall(
                vectors, datatype, metric, params, k=args.k, queries=queries, seed=args.seed
            )
            ms = (time.perf_counter() - t0) * 1000
            baseline = "-"
            if params is not None:
                stored = per_vector_min_max(vectors, datatype)
                recall = knn_recall(vectors, stored, metric, k=args.k, query_rows=rows)
                baseline = f"{recall:.3f}"
            described = (
                f"{params.scheme} scale={params.scale:.3g} zp={params.zero_point:g} "
                f"clipped={params.clipped_fraction:.1e}"
                if params
                else ""
            )
            flag = "  <- flag in plan" if ours.recall_at_k < 0.95 else ""
            sys.stdout.write(
                f"{datatype:<9} {metric:<7} {ours.recall_at_k:>7.3f} {baseline:>8} "
                f"{ours.max_abs_error:>9.2e} {convert_ms:>8.1f} {ms:>7.0f}  {described}{flag}\n"
            )
    sys.stdout.write(f"\ntotal {time.perf_counter() - started:.1f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
