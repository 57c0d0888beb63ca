"""Read each supported file format into raw rows with one shape.

A reader knows its format's columns and how that format writes genres; it does
not judge rows (that is `tgplus.data.table`). What it cannot parse it marks,
so that the row is counted as skipped with a reason instead of vanishing.
Problems with the file as a whole raise `DataError` with a one-line message
naming the file (and the line, where known).
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from tgplus.errors import DataError

log = logging.getLogger(__name__)

# An unterminated quote makes the csv module read the rest of the file into one
# field; a limit far above any real overview turns that into an error we report.
_FIELD_LIMIT = 1 << 20
_MAX_GENRE_CELL = 10_000  # longer cells are not genre lists; never literal_eval them


class SourceFormat(str, Enum):
    """A file format tgplus reads; `auto` detects it from the header."""

    AUTO = "auto"
    MOVIES_METADATA = "movies-metadata"
    TMDB_TOP10K = "tmdb-top10k"
    JUSTWATCH = "justwatch"
    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class RawRow:
    """One input record, before validation. `genres` is None when unparsable."""

    line: int
    id: str
    title: str
    overview: str
    genres: tuple[str, ...] | None
    language: str
    malformed: bool = False
    imdb_id: str = ""
    show: bool = False
    """A TV show, not a movie (JustWatch's `type` SHOW)."""


@dataclass(frozen=True, slots=True)
class _Columns:
    id: str | None
    title: str | None
    overview: str
    genres: str | None
    language: str | None
    imdb_id: str | None = None
    type: str | None = None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; pass a CSV or JSON Lines file inside it")
    with path.open("rb") as stream:
        head = stream.read(8192)
    if not head:
        raise DataError(f"{path}: the file is empty; pass a file with a header and movie rows")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(f"{path}: is a zip archive; unzip it and pass the CSV file inside")
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: is gzip-compressed; decompress it (gunzip) and pass the result")
    if b"\x00" in head:
        raise DataError(f"{path}: looks like a binary file, not CSV or JSON Lines text")


def _open_text(path: Path) -> TextIO:
    # utf-8-sig: files saved by spreadsheet programs start with a byte-order mark.
    return path.open(encoding="utf-8-sig", newline="")


def _decode_error(path: Path) -> DataError:
    """Name the first line that is not UTF-8 (the text layer decodes in chunks, so find it)."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad = raw[error.start : error.start + 1].hex()
                return DataError(
                    f"{path}: line {number}: not valid UTF-8 (byte 0x{bad}); "
                    "re-save the file as UTF-8"
                )
    return DataError(f"{path}: not valid UTF-8; re-save the file as UTF-8")


def detect_format(path: Path) -> SourceFormat:
    """The format of `path`, read from its first line."""
    _check_file(path)
    try:
        with _open_text(path) as stream:
            first = stream.readline()
    except UnicodeDecodeError:
        raise _decode_error(path) from None
    if first.lstrip().startswith("{"):
        return SourceFormat.JSONL
    header = {name.strip().lower() for name in next(csv.reader([first]), [])}
    if {"id", "genres", "overview", "original_language", "imdb_id"} <= header:
        return SourceFormat.MOVIES_METADATA
    if {"id", "title", "genre", "overview", "original_language"} <= header:
        return SourceFormat.TMDB_TOP10K
    if {"id", "title", "type", "description", "genres", "imdb_id"} <= header:
        return SourceFormat.JUSTWATCH
    if header & {"overview", "description"}:
        return SourceFormat.CSV
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        raise DataError(
            f"{path}: line 1 is not a JSON object; a JSON Lines movie file holds one object "
            'per line, such as {"overview": ..., "genres": [...]}'
        )
    shown = ", ".join(sorted(header)[:12]) or "none"
    raise DataError(
        f"{path}: unrecognised columns ({shown}); expected a movies_metadata.csv, a TMDB top-10k "
        "export, a JustWatch titles.csv, or columns 'overview' (or 'description') and 'genres'; "
        "or pass --format"
    )


def read_rows(
    path: Path, source_format: SourceFormat = SourceFormat.AUTO, *, require_genres: bool = True
) -> Iterator[RawRow]:
    """Every record of `path` as a RawRow, in file order.

    Without `require_genres` (scoring a catalogue) a generic file may lack the
    genres column.
    """
    if source_format is SourceFormat.AUTO:
        source_format = detect_format(path)
    else:
        _check_file(path)
    if source_format is SourceFormat.JSONL:
        return _read_jsonl(path)
    return _read_csv(path, source_format, require_genres)


# -- CSV ---------------------------------------------------------------------------------------


def _columns_for(
    path: Path, source_format: SourceFormat, header: list[str], require_genres: bool
) -> _Columns:
    present = {name.strip().lower() for name in header}

    def need(*names: str) -> str:
        for name in names:
            if name in present:
                return name
        shown = ", ".join(sorted(present)[:12]) or "none"
        raise DataError(
            f"{path}: missing column {' or '.join(repr(n) for n in names)} for format "
            f"{source_format.value} (found: {shown})"
        )

    def optional(*names: str) -> str | None:
        return next((name for name in names if name in present), None)

    if source_format is SourceFormat.MOVIES_METADATA:
        return _Columns(
            need("id"),
            optional("title"),
            need("overview"),
            need("genres"),
            optional("original_language"),
            optional("imdb_id"),
        )
    if source_format is SourceFormat.JUSTWATCH:
        return _Columns(
            need("id"),
            optional("title"),
            need("description"),
            need("genres"),
            None,  # JustWatch has no language column; its descriptions are English
            optional("imdb_id"),
            need("type"),
        )
    if source_format is SourceFormat.TMDB_TOP10K:
        return _Columns(
            need("id"),
            optional("title"),
            need("overview"),
            need("genre"),
            optional("original_language"),
        )
    return _Columns(
        optional("id"),
        optional("title"),
        need("overview", "description"),
        need("genres") if require_genres else optional("genres"),
        optional("language", "original_language"),
        optional("imdb_id"),
    )


_SPLIT_NAMES = re.compile(r"[|,]")


def _split_names(cell: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in _SPLIT_NAMES.split(cell) if name.strip())


_UNPARSABLE = object()


def _python_literal(cell: str) -> object:
    """The value of a Python-literal cell, never evaluated as code (`ast.literal_eval`,
    size-capped); `_UNPARSABLE` when it is not a literal."""
    if len(cell) > _MAX_GENRE_CELL:
        return _UNPARSABLE
    try:
        return ast.literal_eval(cell.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return _UNPARSABLE


def _python_literal_genres(cell: str) -> tuple[str, ...] | None:
    """Kaggle's "[{'id': 16, 'name': 'Animation'}, ...]" cells; None if not that shape."""
    value = _python_literal(cell)
    if not isinstance(value, list):
        return None
    names = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        names.append(item["name"].strip())
    return tuple(names)


def _python_literal_names(cell: str) -> tuple[str, ...] | None:
    """JustWatch's "['crime', 'drama']" cells; None if not a list of strings."""
    value = _python_literal(cell)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return None
    return tuple(name.strip() for name in value if name.strip())


def _parse_genres(source_format: SourceFormat, cell: str) -> tuple[str, ...] | None:
    if not cell.strip():
        return ()
    if source_format is SourceFormat.MOVIES_METADATA:
        return _python_literal_genres(cell)
    if source_format is SourceFormat.JUSTWATCH:
        return _python_literal_names(cell)
    return _split_names(cell)


class _QuoteCounter:
    """Feeds lines to the csv reader, counting quote characters and the end of the file.

    A record whose raw text holds an odd number of quotes opened one that never
    closed; if reading it also hit the end of the file, the quote swallowed
    everything after it.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.quotes = 0
        self.exhausted = False

    def __iter__(self) -> _QuoteCounter:
        return self

    def __next__(self) -> str:
        try:
            text = next(self._stream)
        except StopIteration:
            self.exhausted = True
            raise
        self.quotes += text.count('"')
        return text


def _read_csv(path: Path, source_format: SourceFormat, require_genres: bool) -> Iterator[RawRow]:
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    unterminated = (
        f"{path}: line {{line}}: unterminated quote; the rest of the file was read as one "
        "field; close the quote or remove it"
    )
    try:
        with _open_text(path) as stream:
            lines = _QuoteCounter(stream)
            reader = csv.reader(lines)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; pass a file with a header and rows")
            lowered = [name.strip().lower() for name in header]
            columns = _columns_for(path, source_format, header, require_genres)
            index = {name: position for position, name in enumerate(lowered)}
            width = len(header)
            while True:
                start, quotes = reader.line_num + 1, lines.quotes
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    if "field larger than field limit" in str(error):
                        raise DataError(unterminated.format(line=start)) from None
                    raise DataError(f"{path}: line {start}: unreadable CSV ({error})") from None
                if lines.exhausted and (lines.quotes - quotes) % 2:
                    raise DataError(unterminated.format(line=start))
                if not record or record == [""]:
                    continue  # a blank line is not a row
                if len(record) != width:
                    yield RawRow(start, "", "", "", None, "", malformed=True)
                    continue

                def cell(name: str | None, record: list[str] = record) -> str:
                    return record[index[name]] if name is not None else ""

                yield RawRow(
                    line=start,
                    id=cell(columns.id).strip(),
                    title=cell(columns.title).strip(),
                    overview=cell(columns.overview),
                    genres=_parse_genres(source_format, cell(columns.genres)),
                    language=cell(columns.language).strip().lower(),
                    imdb_id=cell(columns.imdb_id).strip(),
                    show=cell(columns.type).strip().upper() == "SHOW",
                )
    except UnicodeDecodeError:
        raise _decode_error(path) from None


# -- JSON Lines --------------------------------------------------------------------------------


def _json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return ""


def _json_genres(value: object) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, str):
        return _split_names(value)
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return tuple(name.strip() for name in value if name.strip())
    return None


def json_object(text: str, where: str) -> dict[str, Any]:
    """One line of a JSON Lines file as an object, or a DataError that starts with `where`."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{where}: not valid JSON ({error.msg}; is the file truncated?); each line must be "
            "one JSON object"
        ) from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, one per line")
    return record


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    try:
        with _open_text(path) as stream:
            for line, text in enumerate(stream, start=1):
                if not text.strip():
                    continue
                record = json_object(text, f"{path}: line {line}")
                overview = record.get("overview", record.get("description"))
                yield RawRow(
                    line=line,
                    id=_json_text(record.get("id")).strip(),
                    title=_json_text(record.get("title")).strip(),
                    overview=_json_text(overview),
                    genres=_json_genres(record.get("genres")),
                    language=_json_text(record.get("language", record.get("original_language")))
                    .strip()
                    .lower(),
                    malformed=not isinstance(overview, (str, type(None))),
                    imdb_id=_json_text(record.get("imdb_id")).strip(),
                )
    except UnicodeDecodeError:
        raise _decode_error(path) from None


# -- directories -------------------------------------------------------------------------------

_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def supported_files(directory: Path) -> list[Path]:
    """Every movie file under `directory`, recursively, in sorted path order.

    A CSV or JSON Lines file whose format is not recognised (a scoring output,
    an unrelated table) is left out and logged, not an error.
    """
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix.lower() in _SUFFIXES):
        if not path.is_file():
            continue
        try:
            detect_format(path)
        except DataError as error:
            log.info("not a movie file, left out: %s", error)
            continue
        found.append(path)
    return found


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """`paths` with each directory replaced by the movie files under it."""
    expanded: list[Path] = []
    for path in paths:
        if not path.is_dir():
            expanded.append(path)
            continue
        inside = supported_files(path)
        if not inside:
            raise DataError(
                f"{path}: no movie files (CSV or JSON Lines with a recognised header) in this "
                "directory or below it"
            )
        expanded += [p for p in inside if p not in expanded]
    return expanded
