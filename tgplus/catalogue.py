"""Read and write catalogue files in chunks: CSV, JSON Lines and Parquet, chosen by suffix.

Readers hand out a few thousand rows at a time, so memory does not grow with
the file. They keep the catalogue's own values (a CSV id such as `007` or
`tt0075314` stays text, exactly as written) and never judge rows: that is
`tgplus.scoring`. A file that cannot be read further raises `DataError`
naming the file and the row (and line) where reading stopped.

Writers turn a scored chunk (an Arrow table) into one part file; `assemble`
joins the parts into the final file. Each `Sink` is one such output; the
batch scorer feeds every chunk to every sink, each taking the rows it wants,
so another output (a review file, say) is one more `Sink`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tgplus.data.sources import json_object
from tgplus.errors import DataError, InputError
from tgplus.scoring import CONFIDENCE, GENRE, GENRES, SCORE_PREFIX, SKIP_REASON, Columns

# An unterminated quote makes the csv module read the rest of the file into one
# field; a limit far above any real description turns that into an error we report.
_FIELD_LIMIT = 1 << 20
SCORE_DIGITS = 4
"""Scores in CSV and JSON Lines are rounded to this many digits; Parquet keeps float32."""


class Format(str, Enum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


SUFFIXES = {
    ".csv": Format.CSV,
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
}


def format_of(path: Path) -> Format:
    """The format a file's suffix names, or an InputError listing the known ones."""
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        known = ", ".join(SUFFIXES)
        raise InputError(
            f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; use one of: {known}"
        ) from None


@dataclass
class Chunk:
    """Rows `first_row` .. `first_row + len(texts) - 1` (1-based) of a catalogue."""

    first_row: int
    kept: pa.Table
    texts: list[object]
    titles: list[object] | None

    @property
    def rows(self) -> int:
        return len(self.texts)


class CatalogueReader(Protocol):
    path: Path
    columns: list[str]

    def progress(self) -> tuple[int, int | None]:
        """(done, total) in bytes for text files and rows for Parquet."""

    def kept_schema(self, columns: Columns) -> pa.Schema:
        """The Arrow types of the kept columns."""

    def chunks(self, columns: Columns, size: int) -> Iterator[Chunk]:
        """The catalogue `size` rows at a time."""

    def close(self) -> None: ...


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; pass a file (the Dask engine reads directories)")


def open_catalogue(path: Path) -> CatalogueReader:
    """A reader for `path`, chosen by its suffix; its columns are known once it returns."""
    file_format = format_of(path)
    _check_file(path)
    if file_format is Format.PARQUET:
        return ParquetReader(path)
    if file_format is Format.JSONL:
        return JsonLinesReader(path)
    return CsvReader(path)


def _text_table(names: Iterable[str], values: dict[str, list[str | None]]) -> pa.Table:
    return pa.table({name: pa.array(values[name], pa.string()) for name in names})


# -- CSV ---------------------------------------------------------------------------------------


class _QuoteCounter:
    """Feeds lines to the csv reader, counting quote characters, to spot a quote never closed."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.quotes = 0

    def __iter__(self) -> _QuoteCounter:
        return self

    def __next__(self) -> str:
        text = checked_utf8(next(self._stream))
        self.quotes += text.count('"')
        return text


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def checked_utf8(line: str) -> str:
    """`line` as read with surrogateescape; a byte that is not UTF-8 raises here.

    Strict decoding fails a whole read-ahead buffer at once, so the error
    named a row up to a few kilobytes before the bad one (or "the header");
    checking line by line names the row that holds it.
    """
    if not line.isascii() and _UNDECODABLE.search(line):
        raise UnicodeDecodeError("utf-8", b"", 0, 1, "invalid UTF-8 byte")
    return line


class _TextFile:
    """A UTF-8 text file (byte-order mark allowed) that reports how far it has read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._binary = path.open("rb")
        self.text = io.TextIOWrapper(
            self._binary, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )

    def position(self) -> int:
        return self._binary.tell()

    def close(self) -> None:
        self.text.close()


def _where(path: Path, row: int, line: int | None = None) -> str:
    return f"{path}: row {row:,}" + (f" (line {line:,})" if line is not None else "")


class _TextReader:
    """What the CSV and JSON Lines readers share: a text file, progress in bytes."""

    _file: _TextFile

    def progress(self) -> tuple[int, int | None]:
        return self._file.position(), self._file.size

    def close(self) -> None:
        self._file.close()

    def kept_schema(self, columns: Columns) -> pa.Schema:
        return pa.schema([pa.field(name, pa.string()) for name in columns.keep])


class CsvReader(_TextReader):
    """A CSV file with a header row; every value is read as text, exactly as written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
        self._file = _TextFile(path)
        self._lines = _QuoteCounter(self._file.text)
        self._reader = csv.reader(self._lines)
        try:
            header = next(self._reader, None)
        except UnicodeDecodeError:
            self.close()
            raise DataError(
                f"{path}: the header row is not valid UTF-8; re-save the file as UTF-8"
            ) from None
        except csv.Error as error:
            self.close()
            raise DataError(f"{path}: unreadable header ({error}); pass a UTF-8 CSV file") from None
        if not header or header == [""]:
            self.close()
            raise DataError(f"{path}: the file is empty; pass a CSV file with a header row")
        self.columns = [name.strip() for name in header]

    def chunks(self, columns: Columns, size: int) -> Iterator[Chunk]:
        index = {name: position for position, name in enumerate(self.columns)}
        width = len(self.columns)
        kept = {name: index[name] for name in columns.keep}
        text_at = index[columns.text]
        title_at = index[columns.title] if columns.title else None
        row = 0
        first = 1
        values: dict[str, list[str | None]] = {name: [] for name in kept}
        texts: list[object] = []
        titles: list[object] = []
        failure: DataError | None = None
        while True:
            line, quotes = self._reader.line_num + 1, self._lines.quotes
            try:
                record = next(self._reader, None)
            except csv.Error as error:
                problem = (
                    "a quote is never closed, so the rest of the file reads as one field"
                    if "field larger than field limit" in str(error)
                    else f"unreadable CSV ({error})"
                )
                failure = DataError(f"{_where(self.path, row + 1, line)}: {problem}")
                break
            except UnicodeDecodeError:
                failure = DataError(
                    f"{_where(self.path, row + 1)}: not valid UTF-8; re-save the file as UTF-8"
                )
                break
            if record is None:
                break
            if (self._lines.quotes - quotes) % 2:
                failure = DataError(
                    f"{_where(self.path, row + 1, line)}: a quote is never closed; is the file "
                    "truncated?"
                )
                break
            if record == [] or record == [""]:
                continue  # a blank line is not a row
            if len(record) != width:
                failure = DataError(
                    f"{_where(self.path, row + 1, line)}: {len(record)} fields where the header "
                    f"has {width}; the file is truncated or malformed there"
                )
                break
            row += 1
            for name, position in kept.items():
                values[name].append(record[position])
            texts.append(record[text_at])
            if title_at is not None:
                titles.append(record[title_at])
            if len(texts) == size:
                yield Chunk(
                    first,
                    _text_table(kept, values),
                    texts,
                    titles if title_at is not None else None,
                )
                first = row + 1
                values = {name: [] for name in kept}
                texts, titles = [], []
        # The rows before a problem are scored before it is reported.
        if texts:
            yield Chunk(
                first, _text_table(kept, values), texts, titles if title_at is not None else None
            )
        if failure is not None:
            raise failure


# -- JSON Lines --------------------------------------------------------------------------------


def _json_value(value: object) -> str | None:
    """Kept values as text: strings as they are, other JSON values as their JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class JsonLinesReader(_TextReader):
    """One JSON object per line; its keys are the columns (the first object's, in order)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _TextFile(path)
        self._line = 0
        self._row = 0
        self._first: dict[str, Any] | None = None
        try:
            self._first = self._next_record()
        except DataError:
            self.close()
            raise
        if self._first is None:
            self.close()
            raise DataError(f"{path}: the file is empty; pass one JSON object per line")
        self.columns = list(self._first)

    def _next_record(self) -> dict[str, Any] | None:
        while True:
            try:
                text = next(self._file.text, None)
                if text is not None:
                    checked_utf8(text)
            except UnicodeDecodeError:
                raise DataError(
                    f"{_where(self.path, self._row + 1)}: not valid UTF-8; re-save the file as "
                    "UTF-8"
                ) from None
            if text is None:
                return None
            self._line += 1
            if not text.strip():
                continue
            self._row += 1
            return json_object(text, _where(self.path, self._row, self._line))

    def chunks(self, columns: Columns, size: int) -> Iterator[Chunk]:
        first = 1
        records: list[dict[str, Any]] = []
        record = self._first
        failure: DataError | None = None
        while record is not None:
            records.append(record)
            if len(records) == size:
                yield self._chunk(first, records, columns)
                first += len(records)
                records = []
            try:
                record = self._next_record()
            except DataError as error:
                failure = error
                break
        # The rows before a problem are scored before it is reported.
        if records:
            yield self._chunk(first, records, columns)
        if failure is not None:
            raise failure

    @staticmethod
    def _chunk(first: int, records: list[dict[str, Any]], columns: Columns) -> Chunk:
        values = {name: [_json_value(r.get(name)) for r in records] for name in columns.keep}
        texts = [r.get(columns.text) for r in records]
        titles = [r.get(columns.title) for r in records] if columns.title else None
        return Chunk(first, _text_table(list(columns.keep), values), texts, titles)


# -- Parquet -----------------------------------------------------------------------------------


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    )


class ParquetReader:
    """A Parquet file read a batch at a time; kept columns keep their Arrow types."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise DataError(
                f"{path}: not a readable Parquet file ({error}); check that it was copied whole"
            ) from None
        self.schema = self._file.schema_arrow
        self.columns = list(self.schema.names)
        self._done = 0

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._file.metadata.num_rows

    def close(self) -> None:
        self._file.close()

    def kept_schema(self, columns: Columns) -> pa.Schema:
        return pa.schema([self.schema.field(name) for name in columns.keep])

    def chunks(self, columns: Columns, size: int) -> Iterator[Chunk]:
        for name in (columns.text, columns.title):
            if name is not None and not _is_text(self.schema.field(name).type):
                raise InputError(
                    f"{self.path}: column {name!r} holds {self.schema.field(name).type}, not "
                    "text; name a text column with --text-column / --title-column"
                )
        batches = self._file.iter_batches(batch_size=size, columns=list(columns.needed))
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as error:
                raise DataError(
                    f"{_where(self.path, self._done + 1)}: unreadable Parquet data ({error}); "
                    "the file is corrupt from there"
                ) from None
            if batch is None:
                return
            table = pa.Table.from_batches([batch])
            first = self._done + 1
            self._done += batch.num_rows
            texts = table.column(columns.text).to_pylist()
            titles = table.column(columns.title).to_pylist() if columns.title else None
            yield Chunk(first, table.select(list(columns.keep)), texts, titles)


# -- writing -----------------------------------------------------------------------------------


def for_text_file(table: pa.Table) -> pa.Table:
    """CSV can hold no lists: genres joined with `|`, scores rounded."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for name in table.column_names:
        column = table.column(name)
        if name == GENRES:
            column = pc.binary_join(column, "|")
        elif name.startswith(SCORE_PREFIX) or name == CONFIDENCE:
            column = pc.round(column, SCORE_DIGITS)
        arrays.append(column)
    return pa.table(arrays, names=table.column_names)


def _write_csv_part(table: pa.Table, stream: Any, header: bool) -> None:
    options = pa_csv.WriteOptions(include_header=header, quoting_style="needed")
    pa_csv.write_csv(for_text_file(table), stream, write_options=options)


def _round(value: object) -> object:
    return round(value, SCORE_DIGITS) if isinstance(value, float) else value


def write_jsonl(table: pa.Table, stream: IO[str]) -> None:
    """One object per row: kept columns, the predictions, and `scores` by genre if present."""
    names = table.column_names
    score_names = [name for name in names if name.startswith(SCORE_PREFIX)]
    plain = [name for name in names if name not in score_names]
    columns = {name: table.column(name).to_pylist() for name in names}
    for row in range(table.num_rows):
        record = {
            name: _round(columns[name][row]) if name == CONFIDENCE else columns[name][row]
            for name in plain
        }
        if score_names:
            record["scores"] = {
                name[len(SCORE_PREFIX) :]: _round(columns[name][row]) for name in score_names
            }
        stream.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def write_part(table: pa.Table, path: Path, file_format: Format) -> None:
    """One chunk as a file: Parquet, CSV without header, or JSON Lines."""
    if file_format is Format.PARQUET:
        pq.write_table(table, path)
    elif file_format is Format.CSV:
        with path.open("wb") as stream:
            _write_csv_part(table, stream, header=False)
    else:
        with path.open("w", encoding="utf-8", newline="") as text:
            write_jsonl(table, text)


def csv_header(names: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(names)
    return buffer.getvalue()


def assemble(parts: Sequence[Path], target: Path, file_format: Format, schema: pa.Schema) -> None:
    """Join part files, in order, into `target` (already a temporary path)."""
    if file_format is Format.PARQUET:
        with pq.ParquetWriter(target, schema) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part, schema=schema))
        return
    with target.open("wb") as out:
        if file_format is Format.CSV:
            out.write(csv_header(schema.names).encode("utf-8"))
        for part in parts:
            with part.open("rb") as stream:
                shutil.copyfileobj(stream, out, 1 << 20)


def write_stdout(table: pa.Table, stream: IO[str]) -> None:
    """A chunk as CSV rows (no header) on a text stream, such as standard output."""
    buffer = io.BytesIO()
    _write_csv_part(table, buffer, header=False)
    stream.write(buffer.getvalue().decode("utf-8"))


@dataclass
class Sink:
    """One output of a batch run: where it goes, in what format, and which rows it takes.

    The main output takes every row; a side file (unconfident rows for review,
    for instance) passes `select`, which returns the rows of a scored chunk it
    wants.
    """

    name: str
    target: Path
    format: Format
    select: Callable[[pa.Table], pa.Table] | None = None

    def take(self, table: pa.Table) -> pa.Table:
        return table if self.select is None else self.select(table)


def output_schema(kept: pa.Schema, genres: Sequence[str], with_scores: bool) -> pa.Schema:
    """Kept columns, then the predictions, then (optionally) one score per genre."""
    fields = [
        *kept,
        pa.field(GENRE, pa.string()),
        pa.field(GENRES, pa.list_(pa.string())),
        pa.field(SKIP_REASON, pa.string()),
        pa.field(CONFIDENCE, pa.float32()),
    ]
    if with_scores:
        fields += [pa.field(SCORE_PREFIX + genre, pa.float32()) for genre in genres]
    return pa.schema(fields)
