"""Score a catalogue on a Dask cluster: `dask.dataframe` in, a directory of Parquet parts out.

The same `score_texts` as the single-process path runs on every partition
through `map_partitions`, so both engines give the same genres. A task
carries only the model's path: each worker process loads the model on its
first partition and keeps it (`tgplus.scoring.cached_predictor`), rather than
receiving a pickled model with every task. Dask itself retries the
partitions of a worker that dies. Needs the `dask` extra:
`pip install 'tgplus[dask]'`.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tgplus.batch import ScoringReport
from tgplus.catalogue import SUFFIXES, Format
from tgplus.errors import DataError, InputError, TgplusError
from tgplus.files import atomic_directory
from tgplus.models import Predictor
from tgplus.scoring import (
    SKIP_REASON,
    Columns,
    cached_predictor,
    check_output_names,
    choose_columns,
    parquet_schema,
    score_pandas,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

CONNECT_SECONDS = 5
"""How long to try reaching a `--scheduler` before giving up with one line."""
CSV_BLOCK = 64 * 2**20
"""Largest CSV block (bytes) a task reads: memory per worker stays bounded."""
BLOCKS_PER_WORKER = 4
"""CSV blocks per worker thread when the file is small enough: whole blocks go to
workers, so with a block or two per worker one of them would idle at the end."""
MIN_CSV_BLOCK = 2**20


def local_worker_config() -> dict[str, Any]:
    """Dask settings for the workers of the local cluster tgplus starts itself.

    One thread per worker: the model is CPU-bound Python and numpy, and Dask already
    sets OMP/MKL/OpenBLAS threads to 1 in worker processes, so BLAS does not
    oversubscribe the cores. Two of Dask's defaults cost a batch run CPU for no use:
    the statistical profiler samples the scoring thread's stack every 10 ms for a
    dashboard nobody watches, and `MALLOC_TRIM_THRESHOLD_` makes glibc hand freed
    memory back at once, so every partition's feature matrices fault their pages in
    again (twice the page faults of the single-process engine). Partitions are of
    bounded size, so the allocator's own defaults (as in one process) keep memory flat.
    """
    import dask

    environment = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environment.pop("MALLOC_TRIM_THRESHOLD_", None)
    return {
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ": environment,
    }


def _import_dask() -> None:
    """Fail early without the extra; dask.dataframe itself is imported while a cluster starts."""
    try:
        import distributed  # noqa: F401

        if not all(importlib.util.find_spec(name) for name in ("dask.dataframe", "pandas")):
            raise ImportError("dask.dataframe")
    except ImportError:
        raise TgplusError(
            "--engine dask needs the dask extra: pip install 'tgplus[dask]'"
        ) from None


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the scheduler at `scheduler`, or of a local cluster of `workers` processes.

    The client is this process's default Dask client while open. It is not entered as a
    context (that would tie it to the calling thread), so it may be opened in another
    thread than the one that computes with it.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        quiet = logging.getLogger("distributed")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # the one-line error below says it all
        try:
            client = Client(scheduler, timeout=f"{CONNECT_SECONDS}s")
        except (OSError, TimeoutError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise TgplusError(
                f"cannot reach the Dask scheduler at {scheduler} ({reason[:200]}); check the "
                "address and that the scheduler is running"
            ) from None
        finally:
            quiet.setLevel(level)
        with contextlib.closing(client):
            yield client
        return
    with (
        dask.config.set(local_worker_config()),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # any free port: 8787 may be taken
            silence_logs=logging.ERROR,
        ) as cluster,
        contextlib.closing(Client(cluster)) as client,
    ):
        yield client


def input_format(source: str) -> tuple[Format, str]:
    """The format of a file, glob or directory of parts, and the path Dask should read."""
    path = Path(source)
    if path.is_dir():
        found = {SUFFIXES[p.suffix.lower()] for p in path.iterdir() if p.suffix.lower() in SUFFIXES}
        if len(found) != 1:
            kinds = ", ".join(sorted(f.value for f in found)) or "none"
            raise InputError(
                f"{source}: expected part files of one type (.csv, .jsonl or .parquet), found: "
                f"{kinds}"
            )
        file_format = found.pop()
        suffixes = [s for s, f in SUFFIXES.items() if f is file_format]
        pattern = next(str(path / f"*{s}") for s in suffixes if any(path.glob(f"*{s}")))
        return file_format, pattern
    suffix = Path(source).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"{source}: unknown file type {suffix or '(no suffix)'!r}; use one of: "
            f"{', '.join(SUFFIXES)}"
        )
    if not glob.glob(source):  # noqa: PTH207 (a glob the user typed, maybe absolute)
        raise DataError(f"{source}: no such file; check the path")
    return SUFFIXES[suffix], source


def csv_block_size(pattern: str, threads: int) -> int:
    """Bytes per CSV block: `BLOCKS_PER_WORKER` per worker thread, within 1 MB .. 64 MB."""
    total = sum(Path(name).stat().st_size for name in glob.glob(pattern))  # noqa: PTH207
    wanted = -(-total // max(1, threads * BLOCKS_PER_WORKER))
    return max(MIN_CSV_BLOCK, min(CSV_BLOCK, wanted))


def read_frame(source: str, threads: int = 1) -> tuple[dd.DataFrame, Format]:
    """The catalogue as a Dask DataFrame; CSV values are read as text, exactly as written.

    `threads` (the cluster's worker threads) sizes CSV blocks so that every worker
    gets several; Parquet is read a file or row group per partition.
    """
    import dask.dataframe as dd

    file_format, pattern = input_format(source)
    try:
        if file_format is Format.PARQUET:
            return dd.read_parquet(pattern), file_format
        if file_format is Format.JSONL:
            return dd.read_json(pattern, lines=True, blocksize=2**26, dtype=False), file_format
        return (
            dd.read_csv(
                pattern,
                dtype=str,
                na_filter=False,
                blocksize=csv_block_size(pattern, threads),
            ),
            file_format,
        )
    except (ValueError, OSError, pa.ArrowException) as error:
        raise DataError(f"{source}: unreadable ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:300]


def _as_text(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:  # pandas' NaN for a missing value
        return None
    return json.dumps(value, ensure_ascii=False)


def score_partition(
    frame: pd.DataFrame,
    model_path: str,
    text: str,
    title: str | None,
    keep: Sequence[str],
    with_scores: bool,
    json_values: bool,
) -> pd.DataFrame:
    """One partition scored: runs on a worker, with the model that process loaded once."""
    predictor = cached_predictor(model_path)
    scored = score_pandas(
        frame, predictor, text=text, title=title, keep=keep, with_scores=with_scores
    )
    if json_values:  # as the single-process reader does: non-string JSON values as JSON text
        for name in keep:
            scored[name] = scored[name].map(_as_text).astype(object)
    return scored


def score_with_dask(
    model_path: Path,
    source: str,
    output: Path,
    *,
    text: str | None = None,
    title: str | None = None,
    keep: Sequence[str] | None = None,
    with_scores: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
) -> ScoringReport:
    """Score `source` (file, glob or directory of parts) into `output`, a Parquet directory.

    The directory appears whole or not at all. With `scheduler`, workers must
    see the same file system paths as this process.
    """
    _import_dask()
    started = time.perf_counter()
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: is a file; --engine dask writes a directory of Parquet parts")
    if output.suffix.lower() in SUFFIXES and SUFFIXES[output.suffix.lower()] is not Format.PARQUET:
        raise InputError(  # it would be a directory of Parquet parts named like a CSV file
            f"{output}: --engine dask writes a directory of Parquet parts, not a "
            f"{output.suffix} file; name a directory (genres/), or use --engine local"
        )
    predictor = cached_predictor(model_path)  # a bad model fails here, before any cluster starts
    with (
        contextlib.ExitStack() as stack,
        ThreadPoolExecutor(1, thread_name_prefix="tgplus-dask-start") as pool,
    ):
        # The cluster starts (or the scheduler is reached) while this thread reads the
        # input's columns and builds the graph: worker processes take seconds to start.
        starting = pool.submit(stack.enter_context, dask_client(scheduler, workers))
        try:
            scored, schema = _scored_frame(
                predictor,
                model_path,
                source,
                lambda: _worker_threads(starting.result()),
                text=text,
                title=title,
                keep=keep,
                with_scores=with_scores,
            )
        except BaseException:
            with contextlib.suppress(BaseException):
                starting.result()  # so that the cluster is stopped on the way out
            raise
        starting.result()
        _write(scored, schema, source, output)
    reasons = pq.read_table(output, columns=[SKIP_REASON]).column(SKIP_REASON)
    report = ScoringReport(outputs=[f"{output}/ (Parquet parts)"])
    skipped = {
        count["values"]: count["counts"]
        for count in pc.value_counts(reasons).to_pylist()
        if count["values"] is not None
    }
    report.add(len(reasons), len(reasons) - sum(skipped.values()), skipped)
    report.seconds = time.perf_counter() - started
    return report


def _worker_threads(client: Client) -> int:
    info = client.scheduler_info(n_workers=-1)
    return sum(int(worker.get("nthreads", 1)) for worker in info["workers"].values()) or 1


def _scored_frame(
    predictor: Predictor,
    model_path: Path,
    source: str,
    threads: Callable[[], int],
    *,
    text: str | None,
    title: str | None,
    keep: Sequence[str] | None,
    with_scores: bool,
) -> tuple[dd.DataFrame, pa.Schema]:
    """The lazy scored frame and the schema to write it with (`threads`: the cluster's)."""
    file_format, _ = input_format(source)
    frame, _ = read_frame(source, threads() if file_format is Format.CSV else 1)
    columns: Columns = choose_columns(
        [str(c) for c in frame.columns], source, text=text, title=title, keep=keep
    )
    check_output_names(columns, predictor.genres, with_scores)
    frame = frame[list(columns.needed)]
    arguments = (
        str(model_path.resolve()),
        columns.text,
        columns.title,
        columns.keep,
        with_scores,
        file_format is Format.JSONL,
    )
    meta = score_partition(frame._meta, *arguments)
    scored = frame.map_partitions(score_partition, *arguments, meta=meta, align_dataframes=False)
    return scored, parquet_schema(meta)


def _write(scored: dd.DataFrame, schema: pa.Schema, source: str, output: Path) -> None:
    import pandas as pd

    with atomic_directory(output) as partial:
        try:
            scored.to_parquet(partial, write_index=False, schema=schema)
        except TgplusError:
            raise
        except (ValueError, OSError, pa.ArrowException, pd.errors.ParserError) as error:
            raise DataError(
                f"{source}: unreadable ({_first_line(error)}); nothing was written to {output}"
            ) from None


def worker_loads(client: Client) -> dict[str, Any]:
    """How often each worker process loaded a model (for tests and diagnostics)."""

    def loads() -> dict[str, int]:
        from tgplus.scoring import LOADS

        return dict(LOADS)

    result: dict[str, Any] = client.run(loads)
    return result
