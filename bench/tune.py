"""Re-derive the settings and blend weights of `fast` and `accurate` by cross-validation.

    python bench/tune.py [--data DIR_OR_FILE ...] [--kind fast|accurate] [--folds 3]

Movies are split into folds by the file they came from (`--group source`,
the default): whole catalogues per fold, which is what users bring, a
catalogue the model never saw. `--group film` folds by the stable split key
instead (a film merged from several files sits in one fold); folded that way,
alpha 0.3 won for Complement NB, while by source, and on bench/catalogues.py,
0.1 did. For every fold, each scorer of the blend is
fitted on the other folds with each candidate setting, and scores the fold:
out-of-fold probabilities for every movie. Each scorer keeps the setting with
the best out-of-fold hit@1; the blend weights are then the point of a 0.05
grid on the simplex with the best out-of-fold hit@1 (micro-F1 breaks ties).
Partial labels are on, as in training: a genre a movie's source cannot
express is neither fitted nor scored.

`--kind accurate` adds the head on fine-tuned MiniLM (`tgplus.models.finetuned`,
one recipe, no candidate settings) to fast's three scorers: it fine-tunes once
per fold, about 15 minutes each on 2 CPU cores, so 45 minutes or more in all.

The printed weights and settings are what `tgplus/models/lexical.py` and
`tgplus/models/accurate.py` use as defaults; the last table compares them with
the defaults in the code.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import data_arguments, data_files, table

Scores = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]

# Candidate settings per scorer; IN_CODE are the defaults tgplus/models uses.
CANDIDATES: dict[str, list[float]] = {
    "logistic": [3.0, 10.0, 30.0],  # C of logistic regression on TF-IDF
    "naive_bayes": [0.03, 0.1, 0.3],  # alpha of Complement NB
    "static": [30.0, 100.0, 300.0],  # C of logistic regression on static word pieces
    "fine_tuned": [0],  # the head on fine-tuned MiniLM: one recipe, nothing to choose
}
IN_CODE: dict[str, float] = {
    "logistic": 10.0,
    "naive_bayes": 0.1,
    "static": 100.0,
    "fine_tuned": 0,
}
SCORERS = {
    "fast": ["logistic", "naive_bayes", "static"],
    "accurate": ["logistic", "naive_bayes", "static", "fine_tuned"],
}
GRID_STEP = 0.05


def hit_at_1(scores: Scores, truth: Bools, known: Bools) -> float:
    top = np.where(known, scores, -np.inf).argmax(axis=1)
    return float(truth[np.arange(len(truth)), top].mean())


def micro_f1(scores: Scores, truth: Bools, known: Bools) -> float:
    """Micro-F1 at per-genre thresholds tuned on these very scores (an upper bound,
    the same for every candidate, so fair for ranking them)."""
    from tgplus.metrics import decide, tune_thresholds

    decided = decide(scores, tune_thresholds(scores, truth, known=known)) & known
    tp = (decided & truth).sum()
    return float(2 * tp / max(decided.sum() + truth.sum(), 1))


def simplex(parts: int, step: float = GRID_STEP) -> list[tuple[float, ...]]:
    """Every weight vector of `parts` non-negative multiples of `step` summing to 1."""
    units = round(1 / step)
    points = []
    for cut in itertools.combinations(range(units + parts - 1), parts - 1):
        bounds = (-1, *cut, units + parts - 1)
        points.append(tuple((bounds[i + 1] - bounds[i] - 1) * step for i in range(parts)))
    return points


def source_folds(sources: Sequence[str], folds: int) -> npt.NDArray[np.int64]:
    """Each film's fold, whole source files per fold: the largest file first into the
    fold with the fewest films so far."""
    sizes: dict[str, int] = {}
    for source in sources:
        sizes[source] = sizes.get(source, 0) + 1
    load = [0] * folds
    assigned: dict[str, int] = {}
    for source in sorted(sizes, key=lambda s: (-sizes[s], s)):
        target = load.index(min(load))
        assigned[source] = target
        load[target] += sizes[source]
    return np.array([assigned[s] for s in sources], dtype=np.int64)


def mix(weights: Sequence[float], parts: Sequence[Scores]) -> Scores:
    blended = np.zeros_like(parts[0])
    for weight, part in zip(weights, parts, strict=True):
        blended += np.float32(weight) * part
    return blended


class Folds:
    """Out-of-fold probabilities of every scorer and setting."""

    def __init__(
        self, texts: list[str], truth: Bools, known: Bools, fold: npt.NDArray[np.int64]
    ) -> None:
        self.texts, self.truth, self.known, self.fold = texts, truth, known, fold
        self.out: dict[tuple[str, float], Scores] = {}

    def run(self, scorers: Sequence[str]) -> None:
        from tgplus.models.lexical import LexicalFeatures

        n, g = self.truth.shape
        for name in scorers:
            for value in CANDIDATES[name]:
                self.out[(name, value)] = np.zeros((n, g), np.float32)
        for k in sorted(set(self.fold.tolist())):
            started = time.perf_counter()
            train, test = np.flatnonzero(self.fold != k), np.flatnonzero(self.fold == k)
            texts = [self.texts[i] for i in train]
            held = [self.texts[i] for i in test]
            features = LexicalFeatures().fit(texts)
            fold = FoldData(
                texts,
                held,
                features.transform(texts),
                features.transform(held),
                self.truth[train],
                self.known[train],
            )
            for name in scorers:
                for value in CANDIDATES[name]:
                    self.out[(name, value)][test] = fold.score(name, value)
            print(
                f"fold {k}: {len(train)} train, {len(test)} scored, "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )


@dataclass
class FoldData:
    """One fold's training side and scored side, in every representation the scorers read."""

    texts: list[str]
    held: list[str]
    matrix: Any
    held_matrix: Any
    labels: Bools
    known: Bools

    def score(self, name: str, value: float) -> Scores:
        """The held side's probabilities from scorer `name` with setting `value`."""
        from tgplus.models.embeddings import DEFAULT_ENCODER
        from tgplus.models.finetuned import FineTunedHead
        from tgplus.models.linear import LinearHead, complement_nb_head, sigmoid
        from tgplus.models.static import StaticEmbeddings, load_piece_table

        y, told = self.labels, self.known
        if name == "logistic":
            head = LinearHead(c=value).fit(self.matrix, y, told)
            return sigmoid(head.decision(self.held_matrix))
        if name == "naive_bayes":
            head = complement_nb_head(self.matrix, y, value, told)
            return sigmoid(head.decision(self.held_matrix))
        if name == "static":
            pieces = load_piece_table(DEFAULT_ENCODER)
            if pieces is None:
                raise SystemExit("error: the MiniLM word pieces are not installed (make dev)")
            static = StaticEmbeddings(c=value).fit(self.texts, y, *pieces, known=told)
            return sigmoid(static.decision(self.held))
        tuned = FineTunedHead(progress=True).fit(self.texts, y, told)
        return tuned.probabilities(self.held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--kind", choices=list(SCORERS), default="fast")
    parser.add_argument("--folds", type=int, default=3, help="Number of folds (default 3).")
    parser.add_argument(
        "--group",
        choices=["film", "source"],
        default="source",
        help="Fold by film (stable split key) or by source file (whole catalogues).",
    )
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tgplus.data import load_movies, split_key
    from tgplus.data.split import key_position
    from tgplus.metrics import known_matrix, label_matrix
    from tgplus.models.accurate import DEFAULT_WEIGHTS as ACCURATE_WEIGHTS
    from tgplus.models.lexical import DEFAULT_WEIGHTS as FAST_WEIGHTS
    from tgplus.training import training_genres

    started = time.perf_counter()
    files = data_files(arguments)
    movies = load_movies(files).movies
    genres = training_genres(movies)
    texts = [m.text for m in movies]
    truth, known = label_matrix(movies, genres), known_matrix(movies, genres)
    if arguments.group == "source":
        fold = source_folds([m.source for m in movies], arguments.folds)
    else:
        fold = np.array([int(key_position(split_key(m)) * arguments.folds) for m in movies])
    scorers = SCORERS[arguments.kind]
    folds = Folds(texts, truth, known, fold)
    folds.run(scorers)

    rows: list[dict[str, object]] = []
    best: dict[str, float] = {}
    for name in scorers:
        scored = {v: hit_at_1(folds.out[(name, v)], truth, known) for v in CANDIDATES[name]}
        best[name] = max(scored, key=lambda v: scored[v])
        for value, hit in scored.items():
            rows.append(
                {
                    "scorer": name,
                    "setting": value,
                    "hit_at_1": f"{hit:.4f}",
                    "chosen": "yes" if value == best[name] else "",
                }
            )
    print(
        f"data: {', '.join(str(f) for f in files)}; {len(movies)} movies, {arguments.folds} folds"
    )
    print("\nout-of-fold hit@1 of each scorer and setting\n")
    columns = [("scorer", "scorer"), ("setting", "C / alpha / k"), ("hit_at_1", "hit@1")]
    print(table(rows, [*columns, ("chosen", "chosen")]))

    chosen = [folds.out[(name, best[name])] for name in scorers]
    ranked = sorted(
        ((hit_at_1(mix(w, chosen), truth, known), w) for w in simplex(len(scorers))),
        reverse=True,
    )
    top = [(hit, micro_f1(mix(w, chosen), truth, known), w) for hit, w in ranked[:5]]
    top.sort(key=lambda item: (round(item[0], 3), item[1]), reverse=True)
    current = FAST_WEIGHTS if arguments.kind == "fast" else ACCURATE_WEIGHTS
    in_code = tuple(current.get(name, 0.0) for name in scorers)

    def named(weights: Sequence[float]) -> str:
        return ", ".join(f"{n} {w:.2f}" for n, w in zip(scorers, weights, strict=True))

    as_coded = [folds.out[(name, IN_CODE[name])] for name in scorers]
    summary: list[dict[str, object]] = [
        {
            "weights": f"the code's settings and weights: {named(in_code)}",
            "hit_at_1": f"{hit_at_1(mix(in_code, as_coded), truth, known):.4f}",
            "micro_f1": f"{micro_f1(mix(in_code, as_coded), truth, known):.4f}",
        },
        {
            "weights": f"chosen settings, the code's weights: {named(in_code)}",
            "hit_at_1": f"{hit_at_1(mix(in_code, chosen), truth, known):.4f}",
            "micro_f1": f"{micro_f1(mix(in_code, chosen), truth, known):.4f}",
        },
    ]
    summary += [
        {"weights": named(w), "hit_at_1": f"{hit:.4f}", "micro_f1": f"{f1:.4f}"}
        for hit, f1, w in top
    ]
    settings = ", ".join(f"{n} {best[n]:g}" for n in scorers)
    print(f"\nblends of the chosen settings ({settings}): the code's weights, then the best\n")
    heads = [("weights", "weights"), ("hit_at_1", "hit@1"), ("micro_f1", "micro-F1 (tuned)")]
    print(table(summary, heads))
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
