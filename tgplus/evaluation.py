"""Measure a saved model on any movie file, beside baselines, with a report and plots.

    python tgplus/evaluation.py [--data FILE ...]   # the original demo's way: test split

Genres the model never learned still count: movies that have them are
scored as misses for those genres, and the report lists them.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script: import the tgplus package, not the modules beside this file.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from tgplus.data import (
    DEFAULT_SPLIT,
    LoadReport,
    LoadSettings,
    Movie,
    SourceFormat,
    SplitSettings,
    expand_paths,
    require_movies,
    split_by_key,
)
from tgplus.errors import DataError, ModelError
from tgplus.files import atomic_file, sha256_file
from tgplus.metrics import HEADLINE, Floats, measure
from tgplus.models import Predictor, load_predictor, model_class
from tgplus.training import PARTIAL_LABELS, train

log = logging.getLogger(__name__)

SplitChoice = Literal["all", "test"]


@dataclass
class Evaluation:
    """The figures of one model on one set of movies."""

    kind: str
    metrics: dict[str, Any]
    reliability: dict[str, Any]
    unseen_genres: dict[str, int]
    training_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    by_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The headline figures on the movies of each source file (a movie counts for
    the first file that holds it)."""
    trust: dict[str, Any] = field(default_factory=dict)
    """Calibration per genre, risk-coverage, recall control, mistakes and confusions."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **self.metrics,
            "by_source": self.by_source,
            "unseen_genres": self.unseen_genres,
            "reliability": self.reliability,
            **self.trust,
            "training_seconds": self.training_seconds,
            "notes": self.notes,
        }


def split_settings_of(predictor: Predictor) -> SplitSettings:
    """The split the model was trained with (defaults for models that do not say)."""
    recorded = predictor.metadata.get("split", {})
    try:
        return SplitSettings(
            test_share=float(recorded.get("test_share", DEFAULT_SPLIT.test_share)),
            validation_share=float(
                recorded.get("validation_share", DEFAULT_SPLIT.validation_share)
            ),
        )
    except (TypeError, ValueError, DataError):
        return DEFAULT_SPLIT


def loading_of(predictor: Predictor) -> LoadSettings:
    """How the model read its training files (language filter, taxonomy, mapping, shows)."""
    return LoadSettings.from_metadata(predictor.metadata)


def select_movies(
    files: Sequence[Path],
    split: SplitChoice,
    settings: SplitSettings,
    *,
    loading: LoadSettings | None = None,
    feedback: str | None = None,
) -> tuple[Movie, ...]:
    """The movies of `files` (with the editors' answers in the `feedback` database applied,
    as training applies them), all or the test side of the split."""
    return load_for_evaluation(files, split, settings, loading=loading, feedback=feedback)[0]


def load_for_evaluation(
    files: Sequence[Path],
    split: SplitChoice,
    settings: SplitSettings,
    *,
    loading: LoadSettings | None = None,
    feedback: str | None = None,
) -> tuple[tuple[Movie, ...], LoadReport]:
    """`select_movies`, and the report of every row read, kept or skipped by reason."""
    loading = loading or LoadSettings()
    table = loading.load(files)
    movies = require_movies(table, "evaluate")
    if feedback is not None:
        from tgplus.feedback.corrections import apply_corrections, read_corrections

        movies = apply_corrections(movies, read_corrections(feedback, loading.taxonomy)).movies
    if split == "test":
        movies = split_by_key(movies, settings).test
        if not movies:
            raise DataError("the test side of the split is empty; use --split all or more data")
    return movies, table.report


def by_source(
    predictor: Predictor, movies: Sequence[Movie], scores: Floats
) -> dict[str, dict[str, Any]]:
    """The headline figures per source file, plus each file's movie count, from the
    movies' calibrated `scores` (scored once, for every source)."""
    groups: dict[str, list[int]] = {}
    for row, movie in enumerate(movies):
        groups.setdefault(movie.source, []).append(row)
    found = {}
    for source, rows in groups.items():
        group = [movies[row] for row in rows]
        metrics = measure(predictor, group, scores=scores[rows]).metrics
        found[source] = {"movies": len(group), **{name: metrics[name] for name in HEADLINE}}
    return found


def evaluate(predictor: Predictor, movies: Sequence[Movie]) -> Evaluation:
    """Score `movies` and compare with their genres (unknown genres count as misses).

    Genres a movie's sources cannot express are left out of its figures
    (partial labels; see `tgplus.metrics.genre_metrics`).
    """
    scores = predictor.score_texts([movie.text for movie in movies])
    measured = measure(predictor, movies, scores=scores)
    notes = []
    if measured.unseen_genres:
        listed = ", ".join(f"{g} ({n})" for g, n in measured.unseen_genres.items())
        notes.append(f"genres the model never learned, counted as misses: {listed}")
    return Evaluation(
        kind=predictor.kind,
        metrics=measured.metrics,
        reliability=measured.reliability,
        unseen_genres=measured.unseen_genres,
        training_seconds=predictor.metadata.get("training_seconds"),
        notes=notes,
        by_source=(
            by_source(predictor, movies, scores) if len({m.source for m in movies}) > 1 else {}
        ),
        trust=measured.trust,
    )


def training_feedback(predictor: Predictor) -> str | None:
    """The feedback database the model was trained with (None: none), to read it again."""
    record = predictor.metadata.get("feedback")
    if not record:
        return None
    url = str(record.get("database", "")).removeprefix("feedback:")
    if "***" in url:  # the password was not saved
        raise DataError(
            "the model was trained with editors' feedback from a database whose password is "
            "not saved; pass --feedback DATABASE_URL to evaluate with the same answers"
        )
    return url


def training_files(predictor: Predictor) -> list[Path]:
    return [Path(entry["path"]) for entry in predictor.metadata.get("data", [])]


def trained_on(predictor: Predictor, files: Sequence[Path]) -> bool:
    """Whether any of `files` (or a file under a directory among them) trained the model."""
    trained = {entry.get("sha256") for entry in predictor.metadata.get("data", [])}
    return any(path.is_file() and sha256_file(path) in trained for path in expand_paths(files))


def overlap_note(predictor: Predictor, files: Sequence[Path], split: SplitChoice) -> str | None:
    """A warning when `--split all` measures the model on the files it learned from.

    `files` may hold directories, as `--data` does: the files under them count.
    """
    if split == "all" and trained_on(predictor, files):
        return (
            "these files trained the model and --split all includes its training movies, "
            "so the figures are optimistic; use --split test for an honest measure"
        )
    return None


def compare_baselines(
    predictor: Predictor,
    kinds: Sequence[str],
    movies: Sequence[Movie],
    *,
    progress: bool = False,
    feedback: str | None = None,
) -> list[Evaluation]:
    """Train each baseline kind on the model's own training files and split (and the
    `feedback` database's answers), then evaluate."""
    if not kinds:
        return []  # nothing to train: the training files need not be at hand
    files = training_files(predictor)
    if not files:
        raise ModelError("the model does not record its training files; cannot train baselines")
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise DataError(f"cannot train baselines: training file(s) not found: {', '.join(missing)}")
    # The baselines abstain by the model's own rule, so that their figures compare.
    calibration = predictor.calibration
    abstention: dict[str, Any] = {}
    if calibration is not None:
        abstention["target_precision"] = calibration.target_precision
        if calibration.confidence_level is not None:
            abstention["confidence_level"] = calibration.confidence_level
    results = []
    for kind in kinds:
        result = train(
            files,
            kind=kind,
            split=split_settings_of(predictor),
            loading=loading_of(predictor),
            progress=progress,
            partial_labels=bool(predictor.metadata.get("partial_labels", PARTIAL_LABELS)),
            feedback=feedback,
            **abstention,
        )
        evaluation = evaluate(result.predictor, movies)
        evaluation.training_seconds = round(result.seconds, 2)
        results.append(evaluation)
    return results


@dataclass
class EvaluationRun:
    """What `run_evaluation` measured: the model first, then the baselines."""

    evaluations: list[Evaluation]
    files: list[Path]
    split: SplitChoice
    context: list[str]
    report: Path | None
    rows: dict[str, Any] = field(default_factory=dict)
    """Rows read, kept and skipped (by reason) in the files, before the split."""

    def to_dict(self) -> dict[str, Any]:
        main = self.evaluations[0].to_dict()
        main["split"] = self.split
        main["data"] = [str(f) for f in self.files]
        main["rows"] = self.rows
        main["compare"] = [e.to_dict() for e in self.evaluations[1:]]
        return main


def run_evaluation(
    model_path: Path,
    files: Sequence[Path] | None = None,
    *,
    split: str | None = None,
    source_format: SourceFormat | None = None,
    baselines: Sequence[str] = (),
    report: Path | None = None,
    progress: bool = False,
    feedback: str | None = None,
) -> EvaluationRun:
    """Measure the model at `model_path` on `files` (default: its training files),
    beside `baselines` trained on the same files and split; write a report if asked.

    `split` is `test` (the test side of the model's split) or `all`; by default `test`
    when a file trained the model, so that the figures are held-out ones, else `all`.

    `source_format` overrides the format the model's training files were read with.
    `feedback` is a feedback database whose editors' answers override the files' genres
    and add films, as `train(feedback=...)` does; by default, the database the model was
    trained with when evaluating on its training files, so that the split and the genres
    are the ones it was trained and tested on.
    """
    if split not in (None, "all", "test"):
        raise DataError(f"--split {split!r} is not one of: all, test")
    for kind in baselines:
        model_class(kind)  # an unknown kind fails before any work
    predictor = load_predictor(model_path)
    if feedback is None and not files:
        feedback = training_feedback(predictor)
    files = list(files or training_files(predictor))
    if not files:
        raise DataError("no data to evaluate on: pass --data FILE")
    if split is None:
        split = "test" if trained_on(predictor, files) else "all"
    chosen: SplitChoice = "test" if split == "test" else "all"
    settings = split_settings_of(predictor)
    loading = loading_of(predictor)
    if source_format is not None:
        loading = replace(loading, source_format=source_format)
    movies, loaded = load_for_evaluation(
        files, chosen, settings, loading=loading, feedback=feedback
    )
    evaluations = [evaluate(predictor, movies)]
    warning = overlap_note(predictor, files, chosen)
    if warning:
        evaluations[0].notes.append(warning)
    evaluations += compare_baselines(
        predictor, baselines, movies, progress=progress, feedback=feedback
    )
    trained_at = predictor.metadata.get("trained_at", "?")
    context = [
        f"model: {model_path} ({predictor.kind}, trained {trained_at})",
        f"data: {', '.join(str(f) for f in files)}; split: {chosen} "
        f"(test share {settings.test_share}); {len(movies):,} movies",
        loaded.describe(),
    ]
    if feedback is not None:
        context.append("genres: the files' genres with the editors' feedback answers applied")
    if report is not None:
        write_report(evaluations, report, title="tgplus evaluation", context=context)
    rows = {
        "read": loaded.rows_read,
        "kept": loaded.rows_kept,
        "skipped": dict(loaded.skipped.most_common()),
    }
    return EvaluationRun(evaluations, files, chosen, context, report, rows)


# -- report ------------------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    try:
        with atomic_file(path) as partial:  # an interrupted run leaves the old plot whole
            figure.savefig(partial, dpi=110, format="png")
    finally:
        _pyplot().close(figure)


def _plot_per_genre_f1(evaluations: Sequence[Evaluation], path: Path) -> None:
    plt = _pyplot()
    main = evaluations[0]
    per_genre = {g: v for g, v in main.metrics["per_genre"].items() if v["support"] > 0}
    genres = sorted(per_genre, key=lambda g: per_genre[g]["f1"])
    figure, axis = plt.subplots(figsize=(8, 0.32 * len(genres) + 1.5))
    height = 0.8 / len(evaluations)
    for i, evaluation in enumerate(evaluations):
        values = [evaluation.metrics["per_genre"].get(g, {}).get("f1", 0.0) for g in genres]
        positions = np.arange(len(genres)) + i * height
        axis.barh(positions, values, height=height, label=evaluation.kind)
    axis.set_yticks(np.arange(len(genres)) + height * (len(evaluations) - 1) / 2)
    axis.set_yticklabels([f"{g} ({per_genre[g]['support']})" for g in genres])
    axis.set_xlabel("F1 at the model's thresholds")
    axis.set_xlim(0, 1)
    axis.set_title("F1 per genre (support in brackets)")
    axis.legend(loc="lower right")
    _save(figure, path)


def _plot_reliability(evaluations: Sequence[Evaluation], path: Path) -> None:
    figure, axis = _pyplot().subplots(figsize=(5.5, 5.5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for evaluation in evaluations:
        curve = evaluation.reliability
        points = [
            (m, o)
            for m, o, c in zip(curve["mean_score"], curve["observed"], curve["count"], strict=True)
            if c
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ece = curve["expected_calibration_error"]
            axis.plot(xs, ys, marker="o", label=f"{evaluation.kind} (ECE {ece:.3f})")
    axis.set_xlabel("predicted probability")
    axis.set_ylabel("observed frequency")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title("Reliability of the genre scores")
    axis.legend(loc="upper left")
    _save(figure, path)


def _confidence_sentence(confident: dict[str, Any] | None) -> str:
    """What the movies are ranked by (and `confident` compares with its threshold)."""
    if confident is not None and confident.get("confidence") == "learned":
        return (
            "Confidence: the learned probability that the top genre is right (a logistic "
            "regression on the calibrated scores, fitted on out-of-source scores of the "
            "training movies)."
        )
    return "Confidence: the top genre's score."


def _plot_risk_coverage(evaluations: Sequence[Evaluation], path: Path) -> None:
    figure, axis = _pyplot().subplots(figsize=(6, 4.5))
    for evaluation in evaluations:
        curve = evaluation.trust.get("risk_coverage", {})
        if curve.get("coverage"):
            axis.plot(curve["coverage"], curve["hit_at_1"], label=evaluation.kind)
    axis.set_xlabel("share of movies answered (most confident first)")
    axis.set_ylabel("hit@1 of the movies answered")
    axis.set_xlim(1, 0)
    axis.set_title("Risk-coverage: answering only the confident movies")
    axis.legend(loc="lower right")
    _save(figure, path)


def trust_lines(main: Evaluation) -> list[str]:
    """The report's sections on calibration, abstention, recall sets, mistakes and sources."""
    trust = main.trust
    lines = [
        f"Expected calibration error over every (movie, genre) pair: "
        f"{main.reliability.get('expected_calibration_error', 0.0):.4f}"
        + ("" if trust.get("calibrated") else " (this model is not calibrated)."),
        "",
        "| genre | ECE |",
        "|---|---|",
        *(
            f"| {genre} | {error:.4f} |"
            for genre, error in sorted(
                trust.get("calibration_error_per_genre", {}).items(), key=lambda kv: -kv[1]
            )
        ),
        "",
        "## Abstention",
        "",
        _confidence_sentence(trust.get("confident")),
        "",
        "![Risk-coverage curve](risk_coverage.png)",
        "",
        "| share answered | hit@1 |",
        "|---|---|",
        *(
            f"| {coverage} | {hit:.3f} |"
            for coverage, hit in trust.get("risk_coverage", {}).get("table", {}).items()
        ),
        "",
    ]
    confident = trust.get("confident")
    if confident:
        hit = confident["hit_at_1"]
        level = confident.get("confidence_level")
        chosen = (
            f"chosen on validation so that a top-genre precision of "
            f"{confident['target_precision']} is reached with probability {level}"
            if level is not None
            else f"chosen on validation for a top-genre precision of "
            f"{confident['target_precision']} (a point estimate: an older model)"
        )
        if confident["threshold"] > 1.0:
            lines += [
                "`confident`: never (no threshold on the validation share reaches a top-genre "
                f"precision of {confident['target_precision']} with probability {level}).",
                "",
            ]
        else:
            lines += [
                f"`confident` (confidence >= {confident['threshold']:.3f}, {chosen}): "
                f"{confident['share']:.1%} of these movies, hit@1 "
                + (f"{hit:.3f}." if hit is not None else "- (none)."),
                "",
            ]
    recall = trust.get("recall_control", {})
    if recall:
        lines += [
            "## Genre sets with a recall target",
            "",
            "| target | achieved recall | mean set size |",
            "|---|---|---|",
            *(
                f"| {target} | {v['achieved_recall']:.3f} | {v['mean_set_size']:.2f} |"
                for target, v in recall.items()
            ),
            "",
        ]
    lines += [
        "## The 20 most confident mistakes",
        "",
        "| title | description | predicted | confidence | true genres |",
        "|---|---|---|---|---|",
        *(
            f"| {_cell(m['title'])} | {_cell(m['description'])}... | {m['predicted']} | "
            f"{m['confidence']:.3f} | {', '.join(m['true'])} |"
            for m in trust.get("confident_mistakes", [])
        ),
        "",
        "## Genres most often added wrongly",
        "",
        "A movie of the first genre tagged with the second, which it does not have.",
        "",
        "| true genre | wrongly added | movies | share of the true genre's movies |",
        "|---|---|---|---|",
        *(
            f"| {p['true']} | {p['added']} | {p['movies']} | {p['share_of_true']:.1%} |"
            for p in trust.get("confused_pairs", [])
        ),
        "",
    ]
    return lines


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def comparison_rows(evaluations: Sequence[Evaluation]) -> list[dict[str, Any]]:
    return [
        {
            "kind": e.kind,
            **{m: e.metrics.get(m) for m in HEADLINE},
            "training_seconds": e.training_seconds,
        }
        for e in evaluations
    ]


def write_report(
    evaluations: Sequence[Evaluation], directory: Path, *, title: str, context: list[str]
) -> Path:
    """report.md with the figures, a per-genre table and two PNG plots."""
    directory.mkdir(parents=True, exist_ok=True)
    _plot_per_genre_f1(evaluations, directory / "per_genre_f1.png")
    _plot_reliability(evaluations, directory / "reliability.png")
    _plot_risk_coverage(evaluations, directory / "risk_coverage.png")
    main = evaluations[0]
    lines = [f"# {title}", "", *[f"- {line}" for line in context], ""]
    lines += [
        "## Summary",
        "",
        "| model | " + " | ".join(HEADLINE.values()) + " | training s |",
        "|---" * (len(HEADLINE) + 2) + "|",
    ]
    for row in comparison_rows(evaluations):
        cells = [f"{row[m]:.3f}" if isinstance(row[m], float) else str(row[m]) for m in HEADLINE]
        seconds = row["training_seconds"]
        lines.append(f"| {row['kind']} | " + " | ".join(cells) + f" | {seconds or '-'} |")
    lines += [
        "",
        "hit@1: the top-scored genre is one of the movie's genres (the original demo's "
        "measure). F1 and Jaccard use the model's per-genre thresholds.",
        "",
    ]
    for note in main.notes:
        lines += [f"> {note}", ""]
    if main.by_source:
        lines += [
            "## Per source file",
            "",
            "| file | movies | " + " | ".join(HEADLINE.values()) + " |",
            "|---" * (len(HEADLINE) + 2) + "|",
        ]
        for source, values in main.by_source.items():
            figures = " | ".join(f"{values[m]:.3f}" for m in HEADLINE)
            lines.append(f"| {source} | {values['movies']} | {figures} |")
        lines.append("")
    lines += [
        "## Per genre",
        "",
        "![F1 per genre](per_genre_f1.png)",
        "",
        "| genre | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for genre, values in sorted(
        main.metrics["per_genre"].items(), key=lambda kv: -kv[1]["support"]
    ):
        lines.append(
            f"| {genre} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values['support']} |"
        )
    lines += [
        "",
        "## Calibration",
        "",
        "![Reliability diagram](reliability.png)",
        "",
        "Each point groups (movie, genre) pairs by score; a calibrated model sits on the diagonal.",
        "",
        *trust_lines(main),
    ]
    path = directory / "report.md"
    with atomic_file(path) as partial:
        partial.write_text("\n".join(lines), encoding="utf-8")
    return path


if __name__ == "__main__":
    from tgplus.cli import app

    arguments = sys.argv[1:]
    if not any(a == "--split" or a.startswith("--split=") for a in arguments):
        arguments += ["--split", "test"]  # the demo measured held-out movies
    sys.exit(app(["evaluate", *arguments], standalone_mode=True))
