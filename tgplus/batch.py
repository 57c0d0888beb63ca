"""Score a catalogue file of any size in one process, a chunk at a time.

Memory stays flat: a chunk is read, scored and written as a part file in a
work directory beside the output (`.<name>.tgplus-parts`); once every chunk
is done the parts are joined into the output with one rename, so a crash
leaves no partial output. The parts outlive an interruption: `resume=True`
skips the chunks already written. Rows that cannot be scored are written
with a `skip_reason` and counted.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tgplus.catalogue import (
    CatalogueReader,
    Chunk,
    Sink,
    assemble,
    csv_header,
    format_of,
    open_catalogue,
    output_schema,
    write_part,
    write_stdout,
)
from tgplus.errors import DataError, InputError
from tgplus.files import atomic_file
from tgplus.models import Predictor
from tgplus.scoring import (
    CONFIDENCE,
    SKIP_REASON,
    Columns,
    check_output_names,
    choose_columns,
    model_fingerprint,
    score_texts,
    scored_columns,
)

log = logging.getLogger(__name__)

CHUNK_ROWS = 16_384
"""Rows read, scored and written at a time: big enough for the model's batch speed."""
MANIFEST = "manifest.json"

Progress = Callable[[int, int, int | None], None]
"""Called after each chunk with (rows done, units done, units in all): bytes or rows."""


@dataclass
class ScoringReport:
    """What a batch run did: rows read = rows scored + rows skipped."""

    rows: int = 0
    scored: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    resumed: int = 0
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, rows: int, scored: int, skipped: dict[str, int]) -> None:
        self.rows += rows
        self.scored += scored
        self.skipped.update(skipped)

    def describe(self) -> str:
        where = ", ".join(self.outputs) or "stdout"
        line = f"scored {self.scored:,} of {self.rows:,} rows -> {where}"
        if self.resumed:
            line += f" ({self.resumed:,} rows from the interrupted run)"
        skipped = sum(self.skipped.values())
        if skipped:
            reasons = ", ".join(f"{n:,} {reason}" for reason, n in self.skipped.most_common())
            line += f"; not scored {skipped:,} (written with skip_reason): {reasons}"
        return line


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: its finished parts are kept for `resume`."""

    def __init__(self, output: Path, rows_done: int) -> None:
        super().__init__(
            f"interrupted; nothing was written to {output}; run the same command with --resume "
            f"to continue after row {rows_done:,}"
        )


def work_directory(output: Path) -> Path:
    """Where the parts of an unfinished run on `output` live."""
    return output.with_name(f".{output.name}.tgplus-parts")


def scored_table(
    chunk: Chunk, predictor: Predictor, schema: pa.Schema, with_scores: bool
) -> tuple[pa.Table, int, Counter[str]]:
    rows = score_texts(predictor, chunk.texts, chunk.titles)
    added = scored_columns(rows, predictor.genres, with_scores=with_scores)
    arrays = [*chunk.kept.columns]
    for name, values in added.items():
        # from_pandas: an unscored row's NaN scores become nulls (empty in CSV, null in JSON
        # Lines, which cannot hold NaN), as the Dask engine writes them
        arrays.append(pa.array(values, schema.field(name).type, from_pandas=True))
    table = pa.Table.from_arrays(arrays, schema=schema)
    reasons = Counter(reason for reason in rows.skip_reason if reason is not None)
    return table, rows.scored, reasons


def _source_stamp(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"path": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _prepare_work(work: Path, manifest: dict[str, Any], resume: bool) -> dict[int, dict[str, Any]]:
    """Parts already done (by chunk number) when resuming, else a fresh work directory."""
    if resume and (work / MANIFEST).is_file():
        try:
            previous = json.loads((work / MANIFEST).read_text(encoding="utf-8"))
            done = {}
            for stats in sorted(work.glob("part-*.json")):
                record = json.loads(stats.read_text(encoding="utf-8"))
                done[int(record["chunk"])] = record
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"{work}: the unfinished run there is unreadable; run without --resume to "
                "start over"
            ) from None
        if previous != manifest:
            raise InputError(
                f"{work}: the unfinished run there used another input file, model or options; "
                "run without --resume to start over"
            )
        return done
    if resume:
        log.info("nothing to resume at %s; scoring from the start", work)
    elif work.exists():
        log.info("discarding the unfinished run at %s (--resume would continue it)", work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with atomic_file(work / MANIFEST) as partial:
        partial.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return {}


def _part_path(work: Path, number: int, sink: Sink) -> Path:
    return work / f"part-{number:06d}.{sink.name}.{sink.format.value}"


def review_sink(predictor: Predictor, target: Path) -> Sink:
    """A side output of the scored rows whose top genre is not `confident` (its confidence
    below the threshold chosen on validation for the model's target precision)."""
    if predictor.calibration is None:
        raise InputError(
            "this model was saved without calibration, so it cannot tell confident rows from "
            "the rest; retrain it with this version of tgplus to use --review"
        )
    threshold = predictor.calibration.threshold

    def unconfident(table: pa.Table) -> pa.Table:
        scored = pc.is_null(table.column(SKIP_REASON))
        below = pc.less(table.column(CONFIDENCE), pa.scalar(threshold, pa.float32()))
        return table.filter(pc.and_(scored, below))

    return Sink("review", target, format_of(target), select=unconfident)


def score_file(
    predictor: Predictor,
    source: Path,
    output: Path | None,
    *,
    text: str | None = None,
    title: str | None = None,
    keep: Sequence[str] | None = None,
    with_scores: bool = False,
    resume: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
    extra_sinks: Sequence[Sink] = (),
    review: Path | None = None,
) -> ScoringReport:
    """Score every row of `source` into `output` (format by suffix; None: CSV on stdout).

    `text`, `title` and `keep` name input columns (defaults: see
    `choose_columns`). With `review`, the scored rows that are not confident
    are also written there (`review_sink`). Raises DataError naming the file and row when the input
    cannot be read further, InputError for a bad choice of columns or files.
    """
    started = time.perf_counter()
    if output is not None:
        out_format = format_of(output)
        if output.resolve() == source.resolve():
            raise InputError(f"{output}: the output would replace the input; choose another name")
    elif resume:
        raise InputError("--resume needs --output: a run on stdout cannot be continued")
    if review is not None:
        if output is None:
            raise InputError("--review needs --output: the review file sits beside an output")
        if review.resolve() in (output.resolve(), source.resolve()):
            raise InputError(f"{review}: the review file must differ from the input and output")
        extra_sinks = [*extra_sinks, review_sink(predictor, review)]
    reader = open_catalogue(source)
    try:
        columns = choose_columns(reader.columns, str(source), text=text, title=title, keep=keep)
        check_output_names(columns, predictor.genres, with_scores)
        if output is None:
            return _to_stdout(predictor, reader, columns, with_scores, chunk_rows, started)
        sinks = [Sink("output", output, out_format), *extra_sinks]
        manifest = {
            "source": _source_stamp(source),
            "model": model_fingerprint(predictor),
            "columns": [columns.text, columns.title, list(columns.keep)],
            "scores": with_scores,
            "chunk_rows": chunk_rows,
            "sinks": [[sink.name, str(sink.target), sink.format.value] for sink in sinks],
        }
        work = work_directory(output)
        done = _prepare_work(work, manifest, resume)
        report = ScoringReport(outputs=[str(sink.target) for sink in sinks])
        schema = output_schema(reader.kept_schema(columns), predictor.genres, with_scores)
        number = -1
        try:
            for number, chunk in enumerate(reader.chunks(columns, chunk_rows)):
                finished = done.get(number)
                if finished is not None and finished["rows"] == chunk.rows:
                    report.add(finished["rows"], finished["scored"], finished["skipped"])
                    report.resumed += chunk.rows
                else:
                    table, scored, reasons = scored_table(chunk, predictor, schema, with_scores)
                    for sink in sinks:
                        write_part(sink.take(table), _part_path(work, number, sink), sink.format)
                    stats = {
                        "chunk": number,
                        "rows": chunk.rows,
                        "scored": scored,
                        "skipped": dict(reasons),
                    }
                    with atomic_file(work / f"part-{number:06d}.json") as partial:
                        partial.write_text(json.dumps(stats), encoding="utf-8")
                    report.add(chunk.rows, scored, reasons)
                if progress is not None:
                    progress(report.rows, *reader.progress())
        except DataError as error:
            # The input must change before a rerun can succeed, so the parts are of no use.
            shutil.rmtree(work, ignore_errors=True)
            raise DataError(
                f"{error}; {report.rows:,} rows before it were scored, nothing was written to "
                f"{output}"
            ) from None
        except KeyboardInterrupt:
            raise Interrupted(output, report.rows) from None
        for sink in sinks:
            parts = [_part_path(work, n, sink) for n in range(number + 1)]
            with atomic_file(sink.target) as partial:
                assemble(parts, partial, sink.format, schema)
        shutil.rmtree(work, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        return report
    finally:
        reader.close()


def _to_stdout(
    predictor: Predictor,
    reader: CatalogueReader,
    columns: Columns,
    with_scores: bool,
    chunk_rows: int,
    started: float,
) -> ScoringReport:
    report = ScoringReport()
    schema = output_schema(reader.kept_schema(columns), predictor.genres, with_scores)
    sys.stdout.write(csv_header(schema.names))
    for chunk in reader.chunks(columns, chunk_rows):
        table, scored, reasons = scored_table(chunk, predictor, schema, with_scores)
        write_stdout(table, sys.stdout)
        report.add(chunk.rows, scored, reasons)
    sys.stdout.flush()
    report.seconds = time.perf_counter() - started
    return report
