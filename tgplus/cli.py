"""The `tgplus` command: a thin shell over the library.

Each command parses its options, calls library functions and prints the
result. Every `TgplusError` becomes a one-line `error: ...` on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tgplus.data import (
    DEFAULT_SPLIT,
    DEFAULT_TAXONOMY,
    LoadSettings,
    SourceFormat,
    load_mapping,
    load_taxonomy,
    parse_languages,
)
from tgplus.data.fetch import fetch_kaggle, fetch_url
from tgplus.data.summary import summarise
from tgplus.errors import TgplusError
from tgplus.metrics import THRESHOLD_FOLDS
from tgplus.models.bundled import BUNDLED_MODEL, DEFAULT_KEEP_TERMS, ModelLocation, locate_model
from tgplus.models.calibration import DEFAULT_CONFIDENCE_LEVEL, DEFAULT_TARGET_PRECISION

if TYPE_CHECKING:
    from tgplus.feedback import FeedbackRepository, FeedbackStore

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="tgplus",
    help="Tag movies with genres from their description: data, training, evaluation, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect and fetch movie data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
feedback_app = typer.Typer(
    help="Editors' feedback: export it for training, count it, delete it.", no_args_is_help=True
)
app.add_typer(feedback_app, name="feedback")
db_app = typer.Typer(help="The feedback database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a TgplusError into `error: ...` on stderr and exit code 2."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TgplusError as error:
            err.print(f"error: {error}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except OSError as error:  # a path the user gave cannot be written or read
            err.print(f"error: {_os_error_line(error)}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except ValidationError as error:  # TGPLUS_* settings out of range
            problem = error.errors()[0]
            name = "TGPLUS_" + "_".join(str(part) for part in problem["loc"]).upper()
            err.print(f"error: {name}: {problem['msg']}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing was written", markup=False)
            raise typer.Exit(130) from None

    return run


def _os_error_line(error: OSError) -> str:
    """What went wrong with a path, and what to do: never only 'File exists'."""
    if not error.filename:
        return f"{error.strerror or error}; check the paths given and their permissions"
    name = str(error.filename)
    if isinstance(error, FileExistsError | NotADirectoryError):
        # mkdir(parents=True) under a file says "File exists"; opening below one, ENOTDIR
        blocking = next(
            (p for p in (Path(name), *Path(name).parents) if p.exists() and not p.is_dir()), None
        )
        if blocking is not None:
            return f"{blocking}: is a file, not a directory; choose a path in a directory"
    return f"{name}: {error.strerror or error}; check the path and its permissions"


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# -- shared options ----------------------------------------------------------------------------

FilesArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Movie files or directories: movies_metadata.csv, TMDB top-10k, JustWatch "
        "titles.csv, CSV or JSONL."
    ),
]
FormatOption = Annotated[
    SourceFormat, typer.Option("--format", help="File format; `auto` reads it from the header.")
]
LanguageOption = Annotated[
    str, typer.Option("--language", help="Keep these original languages: `en`, `en,fr` or `all`.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")
]
TaxonomyOption = Annotated[
    Path | None,
    typer.Option(
        "--taxonomy",
        metavar="FILE",
        help="Your own genre list, one per line.",
        show_default="TMDB's 20 genres",
    ),
]
MappingOption = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        metavar="FILE",
        help="CSV lines `source,target` mapping your genre names onto the taxonomy.",
    ),
]
KeepShowsOption = Annotated[
    bool, typer.Option("--keep-shows", help="Keep TV shows of JustWatch catalogues (movies only).")
]


def _loading(
    source_format: SourceFormat,
    language: str,
    taxonomy: Path | None,
    mapping: Path | None,
    keep_shows: bool,
) -> LoadSettings:
    chosen = load_taxonomy(taxonomy) if taxonomy is not None else DEFAULT_TAXONOMY
    return LoadSettings(
        source_format=source_format,
        languages=parse_languages(language),
        taxonomy=chosen,
        mapping=load_mapping(mapping, chosen) if mapping is not None else None,
        keep_shows=keep_shows,
    )


# -- data --------------------------------------------------------------------------------------


@data_app.command("summary")
@user_errors
def data_summary(
    files: FilesArgument,
    source_format: FormatOption = SourceFormat.AUTO,
    language: LanguageOption = "en",
    taxonomy: TaxonomyOption = None,
    mapping: MappingOption = None,
    keep_shows: KeepShowsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Count rows read, kept and skipped (by reason), genre names and what they map to,
    movies per genre, lengths, languages.

    Example: tgplus data summary ../shared/data/justwatch --mapping my-genres.csv --json
    """
    table = _loading(source_format, language, taxonomy, mapping, keep_shows).load(files)
    summary = summarise(table)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)


def _counts_table(title: str, counts: dict[str, int], total: int | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    if total:
        table.add_column("share", justify="right")
    for name, count in counts.items():
        row = [name, f"{count:,}"]
        if total:
            row.append(f"{count / total:.1%}")
        table.add_row(*row)
    return table


def _print_summary(summary: dict[str, Any]) -> None:
    files = summary["files"]
    reasons = list(summary["rows_skipped"])
    table = Table(title="Rows by file", title_justify="left")
    table.add_column("")
    for number, _ in enumerate(files, start=1):
        table.add_column(f"file {number}", justify="right")
    table.add_column("all", justify="right", style="bold")
    for label, key in (("read", "rows_read"), ("kept", "rows_kept")):
        table.add_row(label, *[f"{f[key]:,}" for f in files], f"{summary[key]:,}")
    for reason in reasons:
        counts = [f"{f['rows_skipped'].get(reason, 0):,}" for f in files]
        table.add_row(f"skipped: {reason}", *counts, f"{summary['rows_skipped'][reason]:,}")
    out.print(table)
    for number, file in enumerate(files, start=1):
        out.print(f"file {number}: {file['path']} ({file['format']})", highlight=False)
    out.print(f"language filter: {summary['language_filter']}", highlight=False)
    out.print(_counts_table("Movies per genre", summary["genres"], summary["rows_kept"]))
    out.print(_counts_table("Genres per movie", summary["genres_per_movie"], summary["rows_kept"]))
    words = summary["overview_words"]
    out.print("Overview length (words): " + ", ".join(f"{k} {v:g}" for k, v in words.items()))
    languages = dict(list(summary["languages"].items())[:10])
    out.print(_counts_table("Languages (top 10)", languages, summary["rows_kept"]))
    for number, file in enumerate(files, start=1):
        names = Table(title=f"Genre names of file {number}", title_justify="left")
        names.add_column("source name")
        names.add_column("count", justify="right")
        names.add_column("maps to")
        for entry in file["genre_names"][:40]:
            names.add_row(
                entry["name"], f"{entry['count']:,}", ", ".join(entry["maps_to"]) or "(nothing)"
            )
        if len(file["genre_names"]) > 40:
            names.add_row(f"... {len(file['genre_names']) - 40} more (see --json)", "", "")
        out.print(names)
        unmapped = ", ".join(f"{n} ({c:,})" for n, c in file["unmapped_genre_names"].items())
        out.print(
            f"file {number}: names that map to nothing: {unmapped or 'none'}", highlight=False
        )
        if file["duplicates_that_added_genres"]:
            out.print(
                f"file {number}: {file['duplicates_that_added_genres']:,} duplicates added genres "
                "to the earlier copy (genres are merged by union)",
                highlight=False,
            )
    if summary["movies_with_partial_labels"]:
        out.print(
            f"partial labels: {summary['movies_with_partial_labels']:,} movies come only from "
            "sources that cannot express every genre",
            highlight=False,
        )


class _DownloadBar:
    """A progress bar that appears only once bytes arrive (errors before that stay one line)."""

    def __init__(self, label: str = "downloading") -> None:
        self._label = label
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None:
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
            self._bar = Progress(*columns, console=err, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._label, total=total)
        self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class FetchSource(str, Enum):
    KAGGLE = "kaggle"
    JUSTWATCH = "justwatch"


@data_app.command("fetch")
@user_errors
def data_fetch(
    dest: Annotated[Path, typer.Option(help="Directory to download into.")] = Path("data"),
    source: Annotated[
        FetchSource,
        typer.Option(
            help="kaggle: The Movies Dataset (credentials needed); justwatch: 11 streaming "
            "catalogues from a public MIT-licensed repository (no account needed)."
        ),
    ] = FetchSource.KAGGLE,
    mirror: Annotated[
        str | None,
        typer.Option(help="With --source justwatch: a copy laid out as <service>/titles.csv."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Download this file instead of Kaggle's dataset.")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected sha256 of the --url file (required with --url).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="File name to write (default: the URL's last part).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Download again even if the file exists.")] = False,
) -> None:
    """Download The Movies Dataset (Kaggle credentials needed), the JustWatch catalogues
    (no account needed), or any file verified by sha256.

    Examples: tgplus data fetch --source justwatch
              tgplus data fetch --url https://example.org/movies.csv --sha256 28a12d27...
    """
    if source is FetchSource.JUSTWATCH:
        if url is not None or sha256 is not None or name is not None:
            raise TgplusError("--url, --sha256 and --name do not go with --source justwatch")
        _fetch_justwatch(dest, mirror, force)
        return
    if mirror is not None:
        raise TgplusError("--mirror goes with --source justwatch")
    if url is None and sha256 is not None:
        raise TgplusError("--sha256 goes with --url; drop it or add the --url to verify")
    if url is not None and sha256 is None:
        raise TgplusError(
            f"{url}: pass --sha256 with the file's expected sha256 so the download can be verified"
        )
    bar = _DownloadBar()
    try:
        if url is not None and sha256 is not None:
            fetched = fetch_url(url, sha256, dest, name=name, force=force, progress=bar)
        else:
            fetched = fetch_kaggle(dest, force=force, progress=bar)
    finally:
        bar.close()
    state = "downloaded" if fetched.downloaded else "already present, kept"
    out.print(f"{fetched.path}: {state} (sha256 {fetched.sha256})", highlight=False)


def _fetch_justwatch(dest: Path, mirror: str | None, force: bool) -> None:
    from tgplus.data.fetch import JUSTWATCH_URL, fetch_justwatch

    bars: list[_DownloadBar] = []

    def bar_for(service: str) -> _DownloadBar:
        if bars:
            bars[-1].close()
        bars.append(_DownloadBar(f"justwatch/{service}"))
        return bars[-1]

    try:
        fetched = fetch_justwatch(
            dest, base_url=mirror or JUSTWATCH_URL, force=force, progress=bar_for
        )
    finally:
        if bars:
            bars[-1].close()
    for file in fetched:
        state = "downloaded" if file.downloaded else "already present, kept"
        out.print(f"{file.path}: {state} (sha256 {file.sha256})", highlight=False)


def main() -> None:
    """Entry point of the `tgplus` console script and `python -m tgplus`.

    A usage error (a missing argument, an option out of range, a mistyped command) is
    one line on stderr, like every other error, not a framed box; exit code 2.
    """
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:  # typer's click errors; usage errors carry `ctx`
        message = error.format_message()
        if "\n" in message.strip():  # a group called bare (`tgplus db`) answers with its help
            err.print(message, markup=False, highlight=False)
        else:
            context = getattr(error, "ctx", None)
            where = f" (see {context.command_path} --help)" if context is not None else ""
            err.print(f"error: {message.strip()}{where}", markup=False, highlight=False)
        sys.exit(error.exit_code)
    except typer.Abort:
        err.print("aborted", markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# -- feedback and its database -----------------------------------------------------------------

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="sqlite:///path or postgresql://...",
        show_default="$TGPLUS_DATABASE_URL or sqlite:///data/feedback.sqlite3",
    ),
]


def _database_url(url: str | None) -> tuple[str, str]:
    """The feedback database's URL (default: the server's) and where it came from, as
    errors name it: the option, or the setting behind its default."""
    from tgplus.config import Settings

    if url is not None:
        return url, "--database"
    return Settings().database_url, "TGPLUS_DATABASE_URL"


@contextlib.contextmanager
def _feedback_store(url: str | None) -> Iterator[FeedbackStore]:
    """The feedback store at `url` (default: the server's); its connections closed after."""
    from tgplus.feedback import FeedbackStore

    store = FeedbackStore(*_database_url(url))
    try:
        yield store
    finally:
        store.dispose()


@contextlib.contextmanager
def _feedback(url: str | None) -> Iterator[FeedbackRepository]:
    """The repository over the store at `url`, migrated to this tgplus's schema first.

    A SQLite file that is not there is an error, not a new empty database: reading
    feedback from a mistyped path would otherwise answer "0 rows".
    """
    from tgplus.feedback import FeedbackRepository
    from tgplus.feedback.store import missing_sqlite_file

    given, setting = _database_url(url)
    if (file := missing_sqlite_file(given, setting)) is not None:
        raise TgplusError(
            f"{setting}: no feedback database at {file}; check the path, or create one "
            "with `tgplus db upgrade`"
        )
    with _feedback_store(url) as store, store.session() as session:
        store.upgrade()
        yield FeedbackRepository(store, session)


@db_app.command("upgrade")
@user_errors
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create the feedback tables, or migrate them to this tgplus's schema (safe to repeat).

    Example: TGPLUS_DATABASE_URL=postgresql://tgplus@db/tgplus tgplus db upgrade
    """
    with _feedback_store(database) as store:
        done = store.upgrade()
    state = "already current" if done.before == done.after else f"upgraded from {done.before}"
    out.print(f"{store.shown_url}: schema {done.after} ({state})", highlight=False)


@feedback_app.command("export")
@user_errors
def feedback_export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write: .csv or .jsonl.")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl.", show_default="from --out")
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Write every feedback row, newest first, as a generic CSV / JSON Lines movie file.

    Example: tgplus feedback export --out corrections.csv
    """
    from tgplus.feedback.export import export_format, write_feedback

    chosen = export_format(out_path, file_format)
    with _feedback(database) as repository:
        rows = repository.feedback()
    written = write_feedback(rows, out_path, chosen)
    out.print(f"{written:,} feedback rows -> {out_path}", highlight=False)


@feedback_app.command("stats")
@user_errors
def feedback_stats(
    database: DatabaseOption = None,
    window: Annotated[
        int, typer.Option(min=1, help="Latest feedback rows the quality figures cover.")
    ] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Count stored feedback and predictions; how often editors kept the suggested genres.

    Example: tgplus feedback stats --json
    """
    with _feedback(database) as repository:
        counts = repository.counts()
        quality = repository.quality(window)
    if as_json:
        print_json({**counts, "quality": quality.to_dict()})
        return
    out.print(
        f"{counts['feedback']:,} feedback rows from {counts['editors']:,} editors "
        f"({counts['first'] or '-'} to {counts['last'] or '-'}); "
        f"{counts['predictions']:,} recorded predictions",
        highlight=False,
    )
    if not quality.feedback:
        return

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    out.print(
        f"latest {quality.feedback:,}: top genre kept {share(quality.top_kept_share)}, "
        f"precision {share(quality.precision)}, recall {share(quality.recall)}",
        highlight=False,
    )
    table = Table(title="Per genre", title_justify="left")
    for column in ("genre", "suggested", "chosen", "agreed", "precision", "recall"):
        table.add_column(column, justify="left" if column == "genre" else "right")
    for genre, g in sorted(quality.per_genre.items()):
        table.add_row(
            genre,
            str(g.suggested),
            str(g.chosen),
            str(g.agreed),
            share(g.precision),
            share(g.recall),
        )
    out.print(table)


@feedback_app.command("purge")
@user_errors
def feedback_purge(
    before: Annotated[
        str,
        typer.Option(help="Delete what was stored before this: 2026-01-31, ...T12:00:00Z or 30d."),
    ],
    database: DatabaseOption = None,
) -> None:
    """Delete feedback and recorded predictions (the users' text) stored before a time.

    Example: tgplus feedback purge --before 90d
    """
    from tgplus.feedback.export import parse_before

    moment = parse_before(before)
    with _feedback(database) as repository:
        purged = repository.purge(moment)
    out.print(
        f"deleted {purged.feedback:,} feedback rows and {purged.predictions:,} recorded "
        f"predictions stored before {moment.isoformat(timespec='seconds')}Z",
        highlight=False,
    )


# -- models ------------------------------------------------------------------------------------

ModelPathOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="Model directory.",
        show_default="$TGPLUS_MODEL_PATH, else data/model if it exists, else the bundled model",
    ),
]


def _model_location(path: Path | None) -> ModelLocation:
    """The model to use; says so on stderr when it is the bundled one."""
    from tgplus.config import Settings

    location = locate_model(path if path is not None else Settings().model_path)
    if location.bundled:
        err.print(location.describe(), markup=False, highlight=False)
    return location


def _model_path(path: Path | None) -> Path:
    return _model_location(path).path


def _short_names(paths: list[str]) -> dict[str, str]:
    """Each path without the directories all of them share (for narrow tables)."""
    import os

    if len(paths) < 2:
        return {path: path for path in paths}
    common = os.path.commonpath([str(Path(path).parent) for path in paths])
    return {path: os.path.relpath(path, common) if common else path for path in paths}


def _metric_line(metrics: dict[str, Any]) -> str:
    from tgplus.metrics import HEADLINE

    return "  ".join(f"{label} {metrics[name]:.3f}" for name, label in HEADLINE.items())


DataOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        metavar="PATH",
        help="Movie file or directory (repeat for several); default: every movie file under "
        "data/, recursively.",
    ),
]


def _rows_line(rows: dict[str, Any], files: int) -> str:
    """Every row read, kept or skipped by reason, as the README promises."""
    skipped = rows.get("skipped", {})
    reasons = ", ".join(
        f"{count:,} {reason}"
        for reason, count in sorted(skipped.items(), key=lambda item: -item[1])
    )
    line = (
        f"read {rows['read']:,} rows from {files:,} file{'s' if files != 1 else ''}: "
        f"kept {rows['kept']:,}, skipped {sum(skipped.values()):,}"
    )
    return f"{line} ({reasons})" if reasons else line


@app.command()
@user_errors
def train(
    data: DataOption = None,
    kind: Annotated[
        str, typer.Option("--kind", help="Model kind: fast, accurate, seed-knn or majority.")
    ] = "fast",
    deprecated_kind: Annotated[
        str | None,
        typer.Option("--model", hidden=True, help="Deprecated spelling of --kind."),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write the model.",
            show_default="$TGPLUS_MODEL_PATH or data/model",
        ),
    ] = None,
    source_format: FormatOption = SourceFormat.AUTO,
    language: LanguageOption = "en",
    taxonomy: TaxonomyOption = None,
    mapping: MappingOption = None,
    keep_shows: KeepShowsOption = False,
    partial_labels: Annotated[
        bool,
        typer.Option(
            help="Treat a genre a source cannot express as unknown, not absent (see README)."
        ),
    ] = True,
    test_share: Annotated[
        float, typer.Option(help="Share of movies held out for testing.")
    ] = DEFAULT_SPLIT.test_share,
    validation_share: Annotated[
        float, typer.Option(help="Share held out of training to calibrate the scores.")
    ] = DEFAULT_SPLIT.validation_share,
    encoder: Annotated[
        str, typer.Option(help="Sentence-transformers model (name or path) for embedding kinds.")
    ] = "all-MiniLM-L6-v2",
    target_precision: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=0.99,
            help="Precision of the top genre that `confident` predictions should reach "
            "(threshold chosen on the validation share).",
        ),
    ] = DEFAULT_TARGET_PRECISION,
    threshold_folds: Annotated[
        int,
        typer.Option(
            min=0,
            help="Tune each genre's threshold on out-of-source scores: the training files in "
            "this many groups, each scored by a model fitted without it (0: tune on the "
            "validation share; costs one fit per fold; `accurate` always tunes on the "
            "validation share, a fit of it takes minutes).",
        ),
    ] = THRESHOLD_FOLDS,
    confidence_level: Annotated[
        float,
        typer.Option(
            min=0.5,
            max=0.999,
            help="How sure the `confident` threshold must be to reach --target-precision "
            "(a lower confidence bound on the validation share; higher answers fewer).",
        ),
    ] = DEFAULT_CONFIDENCE_LEVEL,
    feedback: Annotated[
        str | None,
        typer.Option(
            metavar="DATABASE_URL",
            help="Editors' feedback database: their genres override the files' for the same "
            "film; new films are added.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a model kind on movie files and save it with its metadata, atomically.

    Example: tgplus train --data ../shared/data --kind accurate --out data/accurate
    """
    from tgplus.data import SplitSettings
    from tgplus.training import train as train_model

    if deprecated_kind is not None:
        err.print("note: `train --model KIND` is deprecated; use --kind KIND", highlight=False)
        kind = deprecated_kind
    from tgplus.config import DEFAULT_MODEL_PATH, Settings

    destination = out_path or Settings().model_path or DEFAULT_MODEL_PATH
    result = train_model(
        data,
        kind=kind,
        out=destination,
        loading=_loading(source_format, language, taxonomy, mapping, keep_shows),
        split=SplitSettings(test_share=test_share, validation_share=validation_share),
        encoder=encoder,
        progress=not as_json,
        partial_labels=partial_labels,
        target_precision=target_precision,
        threshold_folds=threshold_folds,
        confidence_level=confidence_level,
        feedback=feedback,
    )
    rows = result.predictor.metadata["rows"]
    if as_json:
        print_json(
            {
                "path": str(destination),
                "kind": kind,
                "seconds": round(result.seconds, 2),
                "rows": rows,
                "feedback": result.predictor.metadata.get("feedback"),
                "metrics": result.metrics,
            }
        )
        return
    out.print(_rows_line(rows, len(result.predictor.metadata.get("data", []))), highlight=False)
    if (used := result.predictor.metadata.get("feedback")) is not None:
        out.print(
            f"feedback: {used['rows']:,} answers, {used['films']:,} films: "
            f"{used['overridden']:,} overrode a file's genres, {used['added']:,} added",
            highlight=False,
        )
    out.print(
        f"trained {kind} on {rows['train']:,} movies ({rows['validation']:,} validation, "
        f"{rows['test']:,} test) in {result.seconds:.1f} s -> {destination}",
        highlight=False,
    )
    if result.metrics.get("movies"):
        out.print(f"test: {_metric_line(result.metrics)}", highlight=False)


@app.command()
@user_errors
def bundle(
    data: Annotated[
        list[Path],
        typer.Option("--data", metavar="FILE", help="Training file (repeat for several)."),
    ],
    data_root: Annotated[
        Path | None,
        typer.Option(help="Record data files by their path under this directory."),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to write it.", show_default="the package's bundled model"
        ),
    ] = None,
    keep_terms: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of TF-IDF terms to keep.")
    ] = DEFAULT_KEEP_TERMS,
    as_json: JsonOption = False,
) -> None:
    """Build the compact fast model that ships with tgplus; measure it beside full precision.

    Example: tgplus bundle --data-root data --data data/movies_metadata.csv --out data/small
    """
    from tgplus.bundle import build_bundle

    result = build_bundle(
        data,
        data_root=data_root,
        out=out_path or BUNDLED_MODEL,
        keep_terms=keep_terms,
        progress=not as_json,
    )
    full, compact = result.full_metrics, result.compact_metrics
    if as_json:
        print_json(
            {
                "path": str(result.path),
                "bytes": result.size_bytes,
                "metrics": {"compact": compact, "full_precision": full},
            }
        )
        return
    out.print(
        f"bundled model: {result.size_bytes / 1e6:.1f} MB -> {result.path}\n"
        f"test ({compact['movies']:,} movies), compact:        {_metric_line(compact)}\n"
        f"test ({full['movies']:,} movies), full precision: {_metric_line(full)}",
        highlight=False,
    )


@app.command()
@user_errors
def evaluate(
    model: ModelPathOption = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            metavar="PATH",
            help="File or directory to evaluate on (repeatable); default: the training files.",
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="`test`: only the test side of the stable split; `all`: every row.",
            show_default="test for files the model was trained on, else all",
        ),
    ] = None,
    source_format: Annotated[
        SourceFormat | None,
        typer.Option("--format", help="File format.", show_default="as the model was trained"),
    ] = None,
    as_json: JsonOption = False,
    report: Annotated[
        Path | None, typer.Option(help="Write report.md and PNG plots into this directory.")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Baseline kinds to train on the same split, e.g. majority,seed-knn."),
    ] = None,
    feedback: Annotated[
        str | None,
        typer.Option(
            metavar="DATABASE_URL",
            help="Editors' feedback database whose answers override the files' genres.",
            show_default="the one the model was trained with, on its training files",
        ),
    ] = None,
) -> None:
    """Measure a model overall and per source file: hit@1, precision@3, F1, Jaccard,
    per-genre figures, optional baselines.

    Example: tgplus evaluate --model data/model --data data/movies_metadata.csv --split test
    """
    from tgplus.evaluation import comparison_rows, run_evaluation
    from tgplus.metrics import HEADLINE

    location = _model_location(model)
    if location.bundled and not data:
        raise TgplusError(
            "the bundled model names its training files by their place in the shared data, "
            "not where they are here; pass --data FILE or --data DIRECTORY to evaluate it"
        )
    run = run_evaluation(
        location.path,
        data,
        split=split,
        source_format=source_format,
        baselines=[kind.strip() for kind in (compare or "").split(",") if kind.strip()],
        report=report,
        progress=not as_json,
        feedback=feedback,
    )
    if as_json:
        print_json(run.to_dict())
        return
    for line in run.context:
        out.print(line, highlight=False)
    table = Table(title="Evaluation", title_justify="left")
    table.add_column("model", no_wrap=True)
    for label in HEADLINE.values():
        table.add_column(label, justify="right")
    table.add_column("train s", justify="right")
    for row in comparison_rows(run.evaluations):
        table.add_row(
            row["kind"],
            *[f"{row[m]:.3f}" for m in HEADLINE],
            f"{row['training_seconds']:.1f}" if row["training_seconds"] else "-",
        )
    out.print(table)
    main = run.evaluations[0]
    if main.by_source:
        sources = Table(title=f"{main.kind} per source file", title_justify="left")
        # The figures never shrink to "0.…" on a narrow terminal or in a pipe (80
        # columns): the file names fold onto more lines instead.
        sources.add_column("file", overflow="fold")
        sources.add_column("movies", justify="right", min_width=6, max_width=7)
        for label in HEADLINE.values():
            widest = max(5, *(len(word) for word in label.split()))
            sources.add_column(label, justify="right", min_width=5, max_width=widest)
        names = _short_names(list(main.by_source))
        for source, values in main.by_source.items():
            sources.add_row(
                names[source], f"{values['movies']:,}", *[f"{values[m]:.3f}" for m in HEADLINE]
            )
        out.print(sources)
    for note in main.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if run.report is not None:
        out.print(f"report: {run.report / 'report.md'}", highlight=False)


class _RowsBar:
    """Rows scored and rows/s on a terminal; nothing at all when stderr is not one."""

    def __init__(self, unit: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._started = time.perf_counter()
        self._bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}% of the {task.fields[unit]}"),
            TextColumn("{task.fields[rows]:,} rows, {task.fields[speed]:,.0f} rows/s"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._task = self._bar.add_task("scoring", total=None, rows=0, speed=0.0, unit=unit)
        self._bar.start()

    def __call__(self, rows: int, done: int, total: int | None) -> None:
        speed = rows / max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(self._task, completed=done, total=total, rows=rows, speed=speed)

    def close(self) -> None:
        self._bar.stop()


def _keep_columns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


@app.command()
@user_errors
def predict(
    descriptions: Annotated[
        list[str] | None, typer.Argument(help="Movie descriptions to tag.")
    ] = None,
    title: Annotated[str, typer.Option(help="Title of the movie (single description).")] = "",
    model: ModelPathOption = None,
    top_k: Annotated[int, typer.Option(min=1, max=50, help="How many top genres to show.")] = 3,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Score every row of this catalogue: .csv, .jsonl or .parquet (with --engine "
            "dask also a glob or a directory of parts).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="With --input: .csv, .jsonl or .parquet file (default: CSV on stdout); "
            "with --engine dask: a directory of Parquet parts."
        ),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(
            help="With --input: the description column (default: overview or description)."
        ),
    ] = None,
    title_column: Annotated[
        str | None,
        typer.Option(
            help="With --input: the title column (default: title if present; '' for none)."
        ),
    ] = None,
    keep: Annotated[
        str | None,
        typer.Option(
            help="With --input: columns to copy to the output, e.g. id,imdb_id (default: id,title)."
        ),
    ] = None,
    scores: Annotated[
        bool, typer.Option("--scores", help="With --input: add a score column per genre.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue an interrupted --input run on the same --output."),
    ] = False,
    engine: Annotated[
        str, typer.Option(help="With --input: `local` (one process, streaming) or `dask`.")
    ] = "local",
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="--engine dask: local worker processes.")
    ] = 2,
    scheduler: Annotated[
        str | None,
        typer.Option(help="--engine dask: address of a running scheduler, e.g. tcp://host:8786."),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="--engine local: rows read, scored and written at a time.")
    ] = 16_384,
    review: Annotated[
        Path | None,
        typer.Option(
            help="With --input (--engine local): also write the rows whose top genre is not "
            "confident to this file, for a person to check.",
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the words behind each top genre.")
    ] = False,
    recall_target: Annotated[
        float | None,
        typer.Option(
            help="Also give the genre set expected to hold this share of the movie's genres "
            "(between 0 and 1, e.g. 0.9).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Tag descriptions with genres, or score a whole catalogue file in batch.

    Examples: tgplus predict "A mob boss's son takes over the family business."
              tgplus predict --explain --recall-target 0.9 "A heist goes wrong."
              tgplus predict --input catalogue.csv --output genres.parquet
              tgplus predict --input 'lake/*.parquet' --output genres/ --engine dask --workers 4
    """
    from tgplus.models import load_predictor

    if input_file is None and not descriptions:
        raise TgplusError("nothing to predict: give a description, or --input FILE")
    if engine not in ("local", "dask"):
        raise TgplusError(f"--engine {engine!r} is not one of: local, dask")
    if input_file is not None and descriptions:
        raise TgplusError("give descriptions or --input FILE, not both")
    # Options a mode would silently ignore: those the user set away from their default.
    single_only = {
        "--title": title != "",
        "--top-k": top_k != 3,
        "--explain": explain,
        "--recall-target": recall_target is not None,
        "--json": as_json,
    }
    batch_only = {
        "--output": output is not None,
        "--text-column": text_column is not None,
        "--title-column": title_column is not None,
        "--keep": keep is not None,
        "--scores": scores,
        "--resume": resume,
        "--engine": engine != "local",
        "--workers": workers != 2,
        "--scheduler": scheduler is not None,
        "--chunk-rows": chunk_rows != 16_384,
        "--review": review is not None,
    }
    if input_file is not None and (wrong := [o for o, given in single_only.items() if given]):
        one = len(wrong) == 1
        raise TgplusError(
            f"{', '.join(wrong)} {'applies' if one else 'apply'} only to descriptions given "
            f"on the command line, not to --input FILE; leave {'it' if one else 'them'} out"
        )
    if input_file is None and (wrong := [o for o, given in batch_only.items() if given]):
        one = len(wrong) == 1
        raise TgplusError(
            f"{', '.join(wrong)} {'needs' if one else 'need'} --input FILE; without it "
            f"{'it does' if one else 'they do'} nothing"
        )
    choice: dict[str, Any] = {
        "text": text_column,
        "title": title_column,
        "keep": _keep_columns(keep),
        "with_scores": scores,
    }
    if input_file is not None and engine == "dask":
        from tgplus.distributed import score_with_dask

        if output is None:
            raise TgplusError(
                "--engine dask writes a directory of Parquet parts: pass --output DIR"
            )
        if resume:
            raise TgplusError(
                "--resume is for --engine local; Dask retries failed partitions itself"
            )
        if review is not None:
            raise TgplusError(
                "--review is for --engine local; with Dask, filter the output on `confidence`"
            )
        report = score_with_dask(
            _model_path(model), input_file, output, scheduler=scheduler, workers=workers, **choice
        )
        err.print(report.describe(), markup=False, highlight=False)
        return
    predictor = load_predictor(_model_path(model))
    if input_file is not None:
        from tgplus.batch import Interrupted, score_file
        from tgplus.catalogue import Format, format_of

        source = Path(input_file)
        bar = None
        if err.is_terminal:
            bar = _RowsBar("rows" if format_of(source) is Format.PARQUET else "file")
        try:
            report = score_file(
                predictor,
                source,
                output,
                resume=resume,
                chunk_rows=chunk_rows,
                progress=bar,
                review=review,
                **choice,
            )
        except Interrupted as stop:
            err.print(str(stop), markup=False, highlight=False)
            raise typer.Exit(130) from None
        finally:
            if bar is not None:
                bar.close()
        err.print(report.describe(), markup=False, highlight=False)
        return
    assert descriptions is not None
    titles = [title] * len(descriptions) if title else None
    predictions = predictor.predict(
        descriptions, titles, top_k=top_k, explain=explain, recall_target=recall_target
    )
    if as_json:
        print_json([p.as_dict(digits=4) for p in predictions])
        return
    for description, prediction in zip(descriptions, predictions, strict=True):
        top = ", ".join(f"{s.genre} {s.score:.2f}" for s in prediction.top)
        short = description if len(description) <= 60 else description[:57] + "..."
        trust = {True: "confident", False: "unsure", None: "uncalibrated"}[prediction.confident]
        out.print(
            f"{prediction.genre:<16} [{', '.join(prediction.genres)}]  top: {top}  "
            f"({trust} {prediction.confidence:.2f})  <- {short}",
            markup=False,
            highlight=False,
        )
        if prediction.genre_set is not None:
            out.print(
                f"  genres for recall {recall_target}: {', '.join(prediction.genre_set)}",
                markup=False,
                highlight=False,
            )
        for entry in prediction.top if explain else ():
            words = ", ".join(
                f"{w.text} {w.weight:+.3f}" + (" (title)" if w.field == "title" else "")
                for w in entry.explanation or ()
            )
            out.print(
                f"  {entry.genre}: {words or 'no known words'}", markup=False, highlight=False
            )
        if explain and prediction.explanation_method != "exact":
            out.print(
                f"  (explanations: {prediction.explanation_method})", markup=False, highlight=False
            )


@app.command()
@user_errors
def serve(
    model: ModelPathOption = None,
    host: Annotated[str | None, typer.Option(help="Address.", show_default="127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Port.", show_default="8000")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.", show_default="1")] = None,
) -> None:
    """Serve the model over HTTP: JSON API, web page at /, docs at /docs.

    Example: tgplus serve --model data/model --port 8000
    """
    import os

    from tgplus.api.server import serve as run_server
    from tgplus.config import Settings

    overrides = {"model_path": model, "host": host, "port": port, "workers": workers}
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"TGPLUS_{name.upper()}"] = str(value)
    run_server(Settings())
