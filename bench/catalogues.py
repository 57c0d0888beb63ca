"""Leave one catalogue out: how each model kind does on movies from a file it never saw.

    python bench/catalogues.py [--data DIR_OR_FILE ...] [--kinds fast,accurate,seed-knn,majority]

For each held-out file (every JustWatch catalogue with at least 500 movies,
and each TMDB file), every model kind is trained on all the other files and
tested on the held-out file's movies that no other file holds (matched by
TMDB id, IMDb id or normalised overview, against every row of the other
files). Beside it, the same kind trained on the TMDB files only (less the
held-out one): the training data tgplus used before the catalogues. `fast`
is also trained without partial labels, to show what the mask changes, and
with its thresholds tuned on the validation share instead of out-of-source
scores (`tgplus.training.out_of_source_scores`), as before 2026-11-26.

Figures are the data layer's: a genre a movie's source cannot express is left
out of its figures (hit@1 is the best genre the source can name);
"hit@1 all" scores every genre, as if sources could name them all.
Calibration is fitted on a validation tenth of each training set, thresholds
on the training films' out-of-source scores (three folds of source files;
`accurate` on the validation tenth, see `GenreModel.refits_cheaply`).
Documentary recall is given as the mean over the held-out sets that have
documentaries and pooled (all their documentaries together, so weighted by
each set's count), with the precision beside each.

Encoding every shared description with MiniLM takes an hour or more on a busy
2-core machine, and `accurate` fine-tunes MiniLM once per training set (about
20 minutes each; 12 training sets with the TMDB-only rows, so 4 hours), so
`--kinds fast` runs in minutes and `--train-share` and `--max-test` shrink the experiment
(the same films are drawn for every held-out set and every kind, by a hash of
their split key) to compare `accurate` with `fast` at equal training data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import data_arguments, data_files, table

KINDS = ["majority", "seed-knn", "fast", "accurate"]
MIN_MOVIES = 500
# Genres JustWatch cannot name: partial labels matter for them (README, "Partial labels").
MASKED_GENRES = ("Adventure", "Mystery", "TV Movie", "Foreign")


@dataclass
class Variant:
    """One way of training: a kind, on all other files or the TMDB files only, masked or not."""

    kind: str
    data: str  # "all" or "tmdb"
    partial_labels: bool = True
    out_of_source_thresholds: bool = True

    @property
    def name(self) -> str:
        label = f"{self.kind}, {'all other files' if self.data == 'all' else 'TMDB files only'}"
        if not self.partial_labels:
            label += ", no partial labels"
        if not self.out_of_source_thresholds:
            label += ", thresholds on validation"
        return label


@dataclass
class Result:
    variant: str
    held_out: str
    metrics: dict[str, Any]
    unmasked_hit_at_1: float
    thresholds: dict[str, float]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def set_name(path: Path) -> str:
    """`netflix` for justwatch/netflix/titles.csv, `tmdb-top10k` for the top-10k file."""
    return path.parent.name


def held_out_files(files: Sequence[Path]) -> list[Path]:
    """JustWatch catalogues with at least MIN_MOVIES movies, and the TMDB files."""
    from tgplus.data import SourceFormat, detect_format, load_movies

    chosen = []
    for path in files:
        file_format = detect_format(path)
        if file_format is SourceFormat.JUSTWATCH:
            if len(load_movies([path]).movies) >= MIN_MOVIES:
                chosen.append(path)
        elif file_format in (SourceFormat.TMDB_TOP10K, SourceFormat.MOVIES_METADATA):
            chosen.append(path)
    return chosen


def is_tmdb(path: Path) -> bool:
    from tgplus.data import SourceFormat, detect_format

    return detect_format(path) in (SourceFormat.TMDB_TOP10K, SourceFormat.MOVIES_METADATA)


def unseen_movies(held_out: Path, others: Sequence[Path]) -> tuple[Any, ...]:
    """The held-out file's movies that no row of `others` holds."""
    from tgplus.data import load_movies
    from tgplus.data.table import identity_keys

    seen = {
        key
        for movie in load_movies(others, deduplicate=False).movies
        for key in identity_keys(movie)
    }
    return tuple(
        movie for movie in load_movies([held_out]).movies if not set(identity_keys(movie)) & seen
    )


def sample(movies: Sequence[Any], share: float, limit: int | None = None) -> list[Any]:
    """The films whose key hashes below `share` (the same films whatever the files), in
    hash order, at most `limit` of them."""
    from tgplus.data import split_key
    from tgplus.data.split import key_position

    ranked = sorted(movies, key=lambda m: key_position("sample:" + split_key(m)))
    chosen = [m for m in ranked if key_position("sample:" + split_key(m)) < share]
    return chosen[:limit] if limit is not None else chosen


class Trainer:
    """Fits each (variant, training files) once: TMDB-only models repeat across held-out sets."""

    def __init__(self, share: float = 1.0) -> None:
        self.share = share
        self.cache: dict[tuple[str, str, bool, bool, tuple[Path, ...]], tuple[Any, float]] = {}

    def fit(self, variant: Variant, files: Sequence[Path]) -> tuple[Any, float]:
        from tgplus.data import SplitSettings, load_movies, split_by_key
        from tgplus.metrics import THRESHOLD_FOLDS
        from tgplus.training import fit_predictor, make_model

        key = (
            variant.kind,
            variant.data,
            variant.partial_labels,
            variant.out_of_source_thresholds,
            tuple(files),
        )
        if key not in self.cache:
            started = time.perf_counter()
            movies = load_movies(files).movies
            if self.share < 1.0:
                movies = tuple(sample(movies, self.share))
            parts = split_by_key(movies, SplitSettings(test_share=0.0, validation_share=0.1))
            predictor = fit_predictor(
                make_model(variant.kind),
                parts.train,
                parts.validation,
                partial_labels=variant.partial_labels,
                threshold_folds=THRESHOLD_FOLDS if variant.out_of_source_thresholds else 0,
            )
            self.cache[key] = (predictor, time.perf_counter() - started)
        return self.cache[key]


def run(
    files: list[Path],
    kinds: list[str],
    only: set[str] | None,
    share: float = 1.0,
    max_test: int | None = None,
) -> list[Result]:
    from tgplus.metrics import measure

    variants = []
    for kind in kinds:
        variants.append(Variant(kind, "all"))
        if kind == "fast":
            variants.append(Variant(kind, "all", partial_labels=False))
            variants.append(Variant(kind, "all", out_of_source_thresholds=False))
        variants.append(Variant(kind, "tmdb"))
    trainer = Trainer(share)
    results = []
    for held_out in held_out_files(files):
        name = set_name(held_out)
        if only and name not in only:
            continue
        others = [f for f in files if f != held_out]
        movies = unseen_movies(held_out, others)
        if max_test is not None:
            movies = tuple(sample(movies, 1.0, max_test))
        print(f"== {name}: {len(movies)} unseen movies", file=sys.stderr, flush=True)
        for variant in variants:
            train_files = others if variant.data == "all" else [f for f in others if is_tmdb(f)]
            predictor, seconds = trainer.fit(variant, train_files)
            measured = measure(predictor, movies)
            unmasked = measure(predictor, movies, partial_labels=False)
            thresholds = {
                g: round(float(t), 2)
                for g, t in zip(predictor.genres, predictor.thresholds, strict=True)
                if g in MASKED_GENRES or g == "Documentary"
            }
            results.append(
                Result(
                    variant.name,
                    name,
                    measured.metrics,
                    unmasked.metrics["hit_at_1"],
                    thresholds,
                    round(seconds, 1),
                )
            )
            print(
                f"   {variant.name}: hit@1 {measured.metrics['hit_at_1']:.3f} "
                f"({seconds:.0f} s to train)",
                file=sys.stderr,
                flush=True,
            )
    return results


def _mean(values: list[float]) -> float | str:
    return round(sum(values) / len(values), 3) if values else "-"


def _ratio(numerator: float, denominator: float) -> float | str:
    return round(numerator / denominator, 3) if denominator else "-"


def summarise(results: list[Result]) -> tuple[str, str, str]:
    variants = list(dict.fromkeys(r.variant for r in results))
    sets = list(dict.fromkeys(r.held_out for r in results))
    movies = {r.held_out: r.metrics["movies"] for r in results}
    by_set: list[dict[str, object]] = []
    summary: list[dict[str, object]] = []
    masked: list[dict[str, object]] = []
    for variant in variants:
        mine = [r for r in results if r.variant == variant]
        row: dict[str, object] = {"variant": variant}
        for r in mine:
            row[r.held_out] = f"{r.metrics['hit_at_1']:.3f}"
        row["mean"] = _mean([r.metrics["hit_at_1"] for r in mine])
        by_set.append(row)
        documentary = [
            r.metrics["per_genre"]["Documentary"]
            for r in mine
            if r.metrics["per_genre"].get("Documentary", {}).get("support", 0) > 0
        ]
        found = sum(d["recall"] * d["support"] for d in documentary)
        flagged = sum(
            d["recall"] * d["support"] / d["precision"] for d in documentary if d["recall"]
        )
        summary.append(
            {
                "variant": variant,
                "hit_at_1": _mean([r.metrics["hit_at_1"] for r in mine]),
                "hit_at_1_all": _mean([r.unmasked_hit_at_1 for r in mine]),
                "micro_f1": _mean([r.metrics["micro_f1"] for r in mine]),
                "macro_f1": _mean([r.metrics["macro_f1"] for r in mine]),
                "documentary_recall": _mean([d["recall"] for d in documentary]),
                "documentary_precision": _mean([d["precision"] for d in documentary]),
                "documentary_recall_pooled": _ratio(found, sum(d["support"] for d in documentary)),
                "documentary_precision_pooled": _ratio(found, flagged),
                "train_s": _mean([r.seconds for r in mine]),
            }
        )
        # Genres JustWatch cannot name, judged on held-out sets that do name them.
        carrying = [r for r in mine if r.held_out in ("tmdb-top10k", "the-movies-dataset")]
        entry: dict[str, object] = {"variant": variant}
        for genre in MASKED_GENRES:
            f1 = [
                r.metrics["per_genre"][genre]["f1"]
                for r in carrying
                if r.metrics["per_genre"].get(genre, {}).get("support", 0) > 0
            ]
            entry[genre] = _mean(f1)
            tuned = [r.thresholds[genre] for r in carrying if genre in r.thresholds]
            entry[f"{genre} thr"] = _mean(tuned)
        masked.append(entry)
    set_columns = [(s, f"{s} ({movies[s]})") for s in sets]
    first = table(by_set, [("variant", "model, trained on"), *set_columns, ("mean", "mean")])
    second = table(
        summary,
        [
            ("variant", "model, trained on"),
            ("hit_at_1", "hit@1"),
            ("hit_at_1_all", "hit@1 all genres"),
            ("micro_f1", "micro-F1"),
            ("macro_f1", "macro-F1"),
            ("documentary_recall", "Doc. recall (mean)"),
            ("documentary_precision", "Doc. precision (mean)"),
            ("documentary_recall_pooled", "Doc. recall (pooled)"),
            ("documentary_precision_pooled", "Doc. precision (pooled)"),
            ("train_s", "train s"),
        ],
    )
    genre_columns: list[tuple[str, str]] = [("variant", "model, trained on")]
    for genre in MASKED_GENRES:
        genre_columns += [(genre, f"{genre} F1"), (f"{genre} thr", "threshold")]
    third = table(masked, genre_columns)
    return first, second, third


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--kinds", default=",".join(KINDS), help="Comma-separated kinds.")
    parser.add_argument("--sets", help="Only these held-out sets (e.g. netflix,tmdb-top10k).")
    parser.add_argument(
        "--train-share", type=float, default=1.0, help="Train on this share of the films."
    )
    parser.add_argument("--max-test", type=int, help="Test on at most this many films per set.")
    parser.add_argument("--json", type=Path, help="Also write every result as JSON here.")
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tgplus.data import expand_paths

    files = expand_paths(data_files(arguments))
    only = set(arguments.sets.split(",")) if arguments.sets else None
    started = time.perf_counter()
    results = run(
        files, arguments.kinds.split(","), only, arguments.train_share, arguments.max_test
    )
    first, second, third = summarise(results)
    print(f"data: {', '.join(str(f) for f in files)}")
    if arguments.train_share < 1.0 or arguments.max_test is not None:
        print(f"training share {arguments.train_share}; at most {arguments.max_test} test films")
    print("\nhit@1 on each held-out set's unseen movies (count in brackets)\n")
    print(first)
    print(
        "\nmeans over the held-out sets (Documentary: over the sets that have documentaries, "
        "and pooled over all their documentaries)\n"
    )
    print(second)
    print("\nF1 and threshold of the genres JustWatch cannot name, on the TMDB held-out sets\n")
    print(third)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [r.__dict__ for r in results]
        arguments.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
