"""Explanations, calibration, abstention and recall control of the fast model, measured.

    python bench/trust.py [--data FILE_OR_DIR ...] [--movies 500] [--held-out netflix]

Trains the fast model on the stable split and, on the held-out test side, prints:
- faithfulness: for each movie's top genre, the drop of its raw score when the
  top-3 explained words of the description are deleted, against 3 random words
  (the comprehensiveness test for rationales), and their ratio;
- latency of one description with and without explanations (in process);
- calibration error, hit@1 by share answered (movies ranked by their confidence and, to
  compare, by the top genre's score), and achieved recall per target;
- `confident`: the share answered and its hit@1, and the same for thresholds refitted on
  the validation side for other target precisions and confidence levels (what the
  guarantee costs in coverage), with the model's confidence and with the top score.

Then, when the data holds the `--held-out` catalogue (a JustWatch service), the
last three again for a fast model trained on every other file and measured on
that catalogue's movies no other file holds (as bench/catalogues.py does):
movies unlike the validation share, where the guarantees may not hold.
Figures follow partial labels (a genre a movie's source cannot name is left out).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import data_arguments, data_files, percentile_ms, table

if TYPE_CHECKING:
    from tgplus.data import Movie
    from tgplus.models import Predictor

_WORD = re.compile(r"\w+")


def without(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the characters of `spans` removed."""
    keep, at = [], 0
    for start, end in sorted(spans):
        keep.append(text[at:start])
        at = end
    return "".join(keep) + text[at:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_arguments(parser)
    parser.add_argument("--movies", type=int, default=500, help="Test movies for faithfulness.")
    parser.add_argument(
        "--held-out", default="netflix", help="Catalogue to measure as unseen data (a folder name)."
    )
    arguments = parser.parse_args()
    files = data_files(arguments)

    from tgplus.data import DEFAULT_SPLIT, load_movies, split_by_key
    from tgplus.data.table import model_text
    from tgplus.models import load_predictor
    from tgplus.training import train

    with tempfile.TemporaryDirectory() as directory:
        train(files, kind="fast", out=Path(directory) / "fast")
        predictor = load_predictor(Path(directory) / "fast")
    sides = split_by_key(load_movies(files).movies, DEFAULT_SPLIT)
    test = sides.test
    rng = random.Random(0)

    # -- faithfulness ---------------------------------------------------------------------
    top_drops: list[float] = []
    random_drops: list[float] = []
    skipped = 0
    for movie in test[: arguments.movies]:
        prediction = predictor.predict_one(movie.overview, movie.title, explain=True, top_k=1)
        genre = predictor.genres.index(prediction.genre)
        words = [
            w
            for w in prediction.top[0].explanation or ()
            if w.field == "description" and w.weight > 0
        ]
        candidates = [m.span() for m in _WORD.finditer(movie.overview)]
        if len(words) < 3 or len(candidates) < 6:
            skipped += 1
            continue
        top3 = [(w.start, w.end) for w in sorted(words, key=lambda w: -w.weight)[:3]]
        random3 = rng.sample(candidates, 3)
        original = predictor.model.predict_proba_one(movie.text)[genre]
        for spans, drops in ((top3, top_drops), (random3, random_drops)):
            # the raw score (before calibration): what the explanation explains
            text = model_text(without(movie.overview, spans), movie.title)
            drops.append(float(original - predictor.model.predict_proba_one(text)[genre]))
    top_mean, random_mean = float(np.mean(top_drops)), float(np.mean(random_drops))
    print(f"## Faithfulness ({len(top_drops)} test movies, {skipped} with too few words skipped)\n")
    print(
        table(
            [
                {"deleted": "top-3 explained words", "drop": f"{top_mean:.4f}"},
                {"deleted": "3 random words", "drop": f"{random_mean:.4f}"},
                {"deleted": "ratio", "drop": f"{top_mean / random_mean:.1f}x"},
            ],
            [("deleted", "words deleted"), ("drop", "mean drop of the top genre's raw score")],
        )
    )

    # -- latency --------------------------------------------------------------------------
    descriptions = [m.overview for m in test[:200]]
    for description in descriptions[:20]:
        predictor.predict_one(description, explain=True)
    rows: list[dict[str, object]] = []
    for label, explain in (("plain", False), ("explain=True", True)):
        seconds = []
        for _ in range(5 if not explain else 2):
            for description in descriptions:
                started = time.perf_counter()
                predictor.predict_one(description, explain=explain)
                seconds.append(time.perf_counter() - started)
        rows.append(
            {
                "path": label,
                "p50": f"{percentile_ms(seconds, 50):.3f}",
                "p99": f"{percentile_ms(seconds, 99):.3f}",
            }
        )
    print(f"\n## Latency of one description, in process (load average {os.getloadavg()[0]:.2f})\n")
    print(table(rows, [("path", "path"), ("p50", "p50 ms"), ("p99", "p99 ms")]))

    trust_tables(predictor, test, "Held-out test side", sides.validation)

    # -- a catalogue no training file holds -------------------------------------------------
    catalogue = next((f for f in expand(files) if f.parent.name == arguments.held_out), None)
    if catalogue is None:
        print(f"\n(no {arguments.held_out} catalogue in the data: held-out catalogue skipped)")
        return
    from bench.catalogues import unseen_movies
    from tgplus.data import SplitSettings
    from tgplus.training import fit_predictor, make_model

    others = [f for f in expand(files) if f != catalogue]
    parts = split_by_key(
        load_movies(others).movies, SplitSettings(test_share=0.0, validation_share=0.1)
    )
    outside = fit_predictor(make_model("fast"), parts.train, parts.validation)
    trust_tables(
        outside,
        unseen_movies(catalogue, others),
        f"The {arguments.held_out} catalogue's movies no other file holds, model trained on "
        "every other file",
        parts.validation,
    )


def expand(files: list[Path]) -> list[Path]:
    """Directories replaced by the movie files under them."""
    from tgplus.data.sources import supported_files

    return [f for path in files for f in (supported_files(path) if path.is_dir() else [path])]


def trust_tables(
    predictor: Predictor,
    movies: Sequence[Movie],
    title: str,
    validation: Sequence[Movie] = (),
) -> None:
    """Calibration error, hit@1 by share answered, `confident` (and, given the
    validation movies, its thresholds for other targets), and recall per target."""
    from sklearn.metrics import roc_auc_score

    from tgplus.metrics import known_matrix, label_matrix, measure, risk_coverage

    measured = measure(predictor, movies)
    trust = measured.trust
    # the same movies ranked by the top genre's score, as before the learned confidence
    scores = predictor.score_texts([m.text for m in movies])
    told = known_matrix(movies, predictor.genres)
    truth = label_matrix(movies, predictor.genres)
    by_top_score = risk_coverage(np.where(told, scores, -np.inf).astype(np.float32), truth)
    print(f"\n## {title} ({len(movies)} movies)\n")
    print(f"expected calibration error: {measured.reliability['expected_calibration_error']:.4f}")
    worst = max(trust["calibration_error_per_genre"].items(), key=lambda kv: kv[1])
    print(f"worst genre: {worst[0]} {worst[1]:.4f}\n")
    print(
        table(
            [
                {
                    "coverage": f"{share:.0%}",
                    "hit": f"{at_share(trust['risk_coverage'], share):.3f}",
                    "top": f"{at_share(by_top_score, share):.3f}",
                }
                for share in (1.0, 0.9, 0.8, 0.5, 0.2, 0.1)
            ],
            [
                ("coverage", "share answered"),
                ("hit", "hit@1 (by confidence)"),
                ("top", "hit@1 (by top score)"),
            ],
        )
    )
    rows, top = np.arange(len(movies)), scores.argmax(axis=1)
    counted = truth.any(axis=1) & told[rows, top]
    hits = truth[rows, top][counted]
    print(
        "\nAUC (a right top genre more confident than a wrong one): "
        f"{roc_auc_score(hits, predictor.confidences(scores)[counted]):.3f} by confidence, "
        f"{roc_auc_score(hits, scores[rows, top][counted]):.3f} by top score"
    )
    confident = trust["confident"]
    if confident:
        print(f"\nconfidence: {confident['confidence']}")
        goal = (
            f"target precision {confident['target_precision']} with probability "
            f"{confident['confidence_level']}"
        )
        print(
            f"\nconfident: never ({goal} not shown on validation)"
            if confident["threshold"] > 1.0
            else f"\nconfident (>= {confident['threshold']:.3f}, {goal}): "
            f"{confident['share']:.1%} of movies, hit@1 {confident['hit_at_1']}"
        )
    if validation:
        print(f"\n{confident_costs(predictor, validation, movies)}")
    print()
    print(
        table(
            [
                {
                    "target": t,
                    "recall": f"{v['achieved_recall']:.3f}",
                    "size": f"{v['mean_set_size']:.2f}",
                }
                for t, v in trust["recall_control"].items()
            ],
            [("target", "recall target"), ("recall", "achieved"), ("size", "mean set size")],
        )
    )


def at_share(curve: dict[str, Any], share: float) -> float:
    """hit@1 of a `risk_coverage` curve at the point nearest `share` answered."""
    coverage = np.asarray(curve["coverage"])
    return float(curve["hit_at_1"][int(np.abs(coverage - share).argmin())])


def confident_costs(
    predictor: Predictor, validation: Sequence[Movie], movies: Sequence[Movie]
) -> str:
    """For several target precisions and confidence levels: the `confident` threshold
    chosen on `validation` and what it answers of `movies` (the model's own top genre,
    on the movies whose sources can name it, as `measure` counts it)."""
    from tgplus.metrics import known_matrix, label_matrix
    from tgplus.models.calibration import Calibration

    raw = predictor.model.predict_proba([m.text for m in validation])
    labels = label_matrix(validation, predictor.genres)
    known = known_matrix(validation, predictor.genres)
    scores = predictor.score_texts([m.text for m in movies])
    truth, told = label_matrix(movies, predictor.genres), known_matrix(movies, predictor.genres)
    rows, top = np.arange(len(movies)), scores.argmax(axis=1)
    counted = truth.any(axis=1) & told[rows, top]
    learned = predictor.calibration.confidence if predictor.calibration else None
    confidences = {"top score": scores[rows, top]}
    if learned is not None:
        confidences["learned"] = learned.apply(scores)
    found = []
    for (name, confidence), target, level in itertools.product(
        confidences.items(), (0.9, 0.85, 0.8), (0.8, 0.9, 0.95)
    ):
        fitted = Calibration.fit(
            raw,
            labels,
            known=known,
            target_precision=target,
            confidence_level=level,
            # the served learned confidence, not refitted
            confidence=(lambda _maps: learned) if name == "learned" else None,
        )
        answered = counted & (confidence >= fitted.threshold)
        hit = truth[rows, top][answered]
        found.append(
            {
                "confidence": name,
                "target": target,
                "level": level,
                "threshold": "never" if fitted.threshold > 1 else f"{fitted.threshold:.3f}",
                "share": f"{answered.sum() / max(counted.sum(), 1):.1%}",
                "hit": f"{hit.mean():.3f}" if len(hit) else "-",
            }
        )
    return table(
        found,
        [
            ("confidence", "confidence"),
            ("target", "target precision"),
            ("level", "confidence level"),
            ("threshold", "threshold"),
            ("share", "share answered"),
            ("hit", "hit@1 answered"),
        ],
    )


if __name__ == "__main__":
    main()
