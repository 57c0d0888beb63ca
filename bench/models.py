"""Train and evaluate every model kind on the shared data; print one table.

    python bench/models.py [--data FILE ...] [--kinds fast,accurate,seed-knn,majority]

Each kind runs in its own process so its peak memory is its own. Figures:
held-out (test side of the stable split) hit@1, micro/macro F1; training
seconds; single-description latency in process (p50/p99, `predict_one`);
batch throughput (`predict` on the whole test side, embedding cache off);
model size on disk; peak resident memory; whether torch was imported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import data_arguments, data_files, directory_bytes, percentile_ms, table

KINDS = ["majority", "seed-knn", "fast", "accurate"]


def measure(kind: str, files: list[Path], out: Path) -> dict[str, Any]:
    """Train, evaluate and time one kind (runs inside the child process)."""
    from tgplus.data import DEFAULT_SPLIT, load_movies, split_by_key
    from tgplus.models import load_predictor
    from tgplus.training import train

    result = train(files, kind=kind, out=out, progress=True)
    predictor = load_predictor(out)  # measure the model as it is served: loaded from disk
    encoder = getattr(predictor.model, "encoder_", None)
    if encoder is not None:
        encoder.cache = None  # time real encoding, not cache hits
    test = split_by_key(load_movies(files).movies, DEFAULT_SPLIT).test
    descriptions = [m.overview for m in test]
    titles = [m.title for m in test]

    calls = 1000 if not predictor.model.needs_embeddings else 200
    for description in descriptions[:20]:
        predictor.predict_one(description)
    latencies = []
    for i in range(calls):
        index = i % len(descriptions)
        started = time.perf_counter()
        predictor.predict_one(descriptions[index], titles[index])
        latencies.append(time.perf_counter() - started)

    batch = descriptions if not predictor.model.needs_embeddings else descriptions[:300]
    started = time.perf_counter()
    predictor.predict(batch, titles[: len(batch)])
    throughput = len(batch) / (time.perf_counter() - started)

    metrics = result.metrics
    return {
        "kind": kind,
        "hit_at_1": metrics["hit_at_1"],
        "micro_f1": metrics["micro_f1"],
        "macro_f1": metrics["macro_f1"],
        "test_movies": metrics["movies"],
        "train_s": round(result.seconds, 1),
        "p50_ms": round(percentile_ms(latencies, 50), 3),
        "p99_ms": round(percentile_ms(latencies, 99), 3),
        "batch_per_s": round(throughput),
        "size_mb": round(directory_bytes(out) / 1e6, 1),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "torch": "yes" if "torch" in sys.modules else "no",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--kinds", default=",".join(KINDS), help="Comma-separated kinds.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    arguments = parser.parse_args()
    files = data_files(arguments)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if arguments.child:
        with tempfile.TemporaryDirectory() as scratch:
            row = measure(arguments.child, files, Path(scratch) / "model")
        print("RESULT " + json.dumps(row))
        return

    rows = []
    for kind in arguments.kinds.split(","):
        command = [sys.executable, __file__, "--child", kind]
        for f in files:
            command += ["--data", str(f)]
        print(f"== {kind}", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            sys.stderr.write(done.stderr[-3000:])
            raise SystemExit(f"error: benchmark of {kind} failed")
        rows.append(json.loads(lines[-1][len("RESULT ") :]))

    seed = next((r["hit_at_1"] for r in rows if r["kind"] == "seed-knn"), None)
    for row in rows:
        if seed is not None:
            row["vs_seed"] = f"{(row['hit_at_1'] - seed) * 100:+.1f}"
    print(f"data: {', '.join(str(f) for f in files)}; test movies: {rows[0]['test_movies']}")
    print(
        table(
            rows,
            [
                ("kind", "model"),
                ("hit_at_1", "hit@1"),
                ("vs_seed", "vs seed-knn (pts)"),
                ("micro_f1", "micro-F1"),
                ("macro_f1", "macro-F1"),
                ("train_s", "train s"),
                ("p50_ms", "1 text p50 ms"),
                ("p99_ms", "1 text p99 ms"),
                ("batch_per_s", "batch texts/s"),
                ("size_mb", "size MB"),
                ("peak_mb", "peak RSS MB"),
                ("torch", "torch loaded"),
            ],
        )
    )
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
