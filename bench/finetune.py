"""Does fine-tuning all-MiniLM-L6-v2 help on catalogues the model never saw?

    python bench/finetune.py [--data DIR_OR_FILE ...] [--held-out netflix,hbo,disney]

One fold: the `--held-out` catalogues are left out together; every other
file trains (a tenth of it calibrates, as in `bench/catalogues.py`). On the
held-out files' movies that no training file holds (`bench/catalogues.py`'s
rule), it prints hit@1 and Documentary recall of

- `fast`, as tgplus trains it;
- `accurate`, as tgplus trains it: `fast` averaged with a genre head on
  MiniLM fine-tuned under it (`tgplus.models.finetuned`), calibrated and
  thresholded on the validation tenth;
- that head alone, on the fine-tuned MiniLM;
- the same head on frozen MiniLM (where fine-tuning starts).

The fine-tuning pass takes about 20 minutes for 14,000-21,000 films on an
idle 2-core machine (about 16 descriptions a second; encoding alone runs at
about 55), so this is one fold; `bench/catalogues.py --kinds accurate` runs
all nine. Needs the embeddings extra (torch). Frozen embeddings come from
tgplus's cache when present; tuned weights too, when the same films were
tuned before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalogues import set_name, unseen_movies
from bench.common import data_arguments, data_files, table

Floats = npt.NDArray[np.float32]
VARIANTS = ("fast", "accurate", "fine-tuned head alone", "head on frozen MiniLM")


def run(files: Sequence[Path], held_out: Sequence[str]) -> dict[str, Any]:
    import torch

    from tgplus.data import SplitSettings, load_movies, split_by_key
    from tgplus.metrics import known_matrix, label_matrix, measure
    from tgplus.models.embeddings import Encoder
    from tgplus.models.finetuned import frozen_head
    from tgplus.training import fit_predictor, make_model

    held = [path for path in files if set_name(path) in held_out]
    training = [path for path in files if path not in held]
    if len(held) != len(held_out):
        raise SystemExit(f"--held-out {','.join(held_out)}: not all of them are among the files")
    parts = split_by_key(
        load_movies(training).movies, SplitSettings(test_share=0.0, validation_share=0.1)
    )
    train = list(parts.train)
    tests = {set_name(path): unseen_movies(path, training) for path in held}
    print(f"{len(train):,} films train, {len(parts.validation):,} calibrate", file=sys.stderr)

    predictors: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for kind in ("fast", "accurate"):
        started = time.perf_counter()
        predictors[kind] = fit_predictor(make_model(kind, progress=True), train, parts.validation)
        seconds[kind] = time.perf_counter() - started
    genres = list(predictors["fast"].genres)
    texts = [m.text for m in train]
    encoder = Encoder()
    head = frozen_head(
        encoder.encode(texts), label_matrix(train, genres), known_matrix(train, genres)
    )

    rows: list[dict[str, Any]] = [{"variant": variant} for variant in VARIANTS]
    for name, movies in tests.items():
        texts = [m.text for m in movies]
        with torch.no_grad():
            vectors = torch.from_numpy(encoder.encode(texts))
            frozen = torch.sigmoid(head(vectors)).numpy()
        scores: dict[str, Floats] = {
            "fast": predictors["fast"].score_texts(texts),
            "accurate": predictors["accurate"].score_texts(texts),
            "fine-tuned head alone": predictors["accurate"].model.fine_tuned_.probabilities(texts),
            "head on frozen MiniLM": frozen,
        }
        for row in rows:
            variant = row["variant"]
            # the heads alone have no thresholds of their own: fast's stand in for recall
            predictor = predictors.get(variant, predictors["fast"])
            metrics = measure(predictor, movies, scores=scores[variant]).metrics
            row[name] = metrics["hit_at_1"]
            documentary = metrics["per_genre"].get("Documentary", {})
            if variant in predictors and documentary.get("support"):
                row[f"{name} documentary recall"] = documentary["recall"]
    for row in rows:
        row["mean"] = round(float(np.mean([row[name] for name in tests])), 4)
    return {
        "held_out": {name: len(movies) for name, movies in tests.items()},
        "train_films": len(train),
        "rows": rows,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument(
        "--held-out", default="netflix,hbo,disney", help="Catalogues left out together."
    )
    parser.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tgplus.data import expand_paths

    held_out = [name.strip() for name in arguments.held_out.split(",") if name.strip()]
    result = run(expand_paths(data_files(arguments)), held_out)
    names = list(result["held_out"])
    columns = [("variant", "model")]
    columns += [(name, f"{name} ({result['held_out'][name]})") for name in names]
    columns += [("mean", "mean")]
    print(f"hit@1 on the unseen movies of {', '.join(names)} (count in brackets)")
    print(f"{result['train_films']:,} training films; seconds: {result['seconds']}\n")
    print(table(result["rows"], columns))
    recall = [(f"{name} documentary recall", f"{name}") for name in names]
    print("\nDocumentary recall at each kind's thresholds\n")
    print(table(result["rows"][:2], [("variant", "model"), *recall]))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
