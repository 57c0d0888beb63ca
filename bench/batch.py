"""Batch scoring at catalogue scale: one process streaming, then Dask with local workers.

    python bench/batch.py [--data FILE ...] [--model DIR] [--rows 1000000] [--workers 2]

Builds a catalogue of `--rows` rows by cycling the real titles and overviews
of the data files (every row gets a unique id), as one CSV file and as a
directory of Parquet parts. Then runs `tgplus predict` as its own process:
single-process CSV -> Parquet on the full catalogue and on its first
`--small` rows (to show that memory does not grow with the file), and
`--engine dask` with `--workers` local workers on the Parquet parts. Prints
rows/s, wall time, CPU time (the process and the workers it waited for;
rows per CPU-second is what an idle core would do, when other jobs share
the machine) and peak RSS (for Dask also the sum over the client and its
workers, sampled every 0.2 s), and checks that both engines gave the same
genres on every row.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import data_arguments, data_files, table
from tgplus.catalogue import open_catalogue
from tgplus.errors import InputError
from tgplus.scoring import GENRES, SKIP_REASON, choose_columns

PART_ROWS = 62_500
TEXT_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def text_files(paths: list[Path]) -> list[Path]:
    """The files given, and the CSV and JSON Lines files below each directory given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
        else:
            found.append(path)
    return found


def real_rows(files: list[Path]) -> list[tuple[str, str]]:
    """(title, text) of every row of the files with a text column, empty texts included."""
    rows: list[tuple[str, str]] = []
    for path in files:
        reader = open_catalogue(path)
        try:
            columns = choose_columns(reader.columns, str(path), keep=())
        except InputError:
            reader.close()
            continue  # a table without descriptions
        try:
            for chunk in reader.chunks(columns, 50_000):
                titles = chunk.titles or [""] * chunk.rows
                rows += [
                    (str(t or ""), str(o or "")) for t, o in zip(titles, chunk.texts, strict=True)
                ]
        finally:
            reader.close()
    return rows


def write_catalogue(rows: list[tuple[str, str]], count: int, csv_path: Path, parts: Path) -> None:
    """`count` rows cycling `rows`, ids `b0000001`...: a CSV file and Parquet parts."""
    parts.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "title", "overview"])
        for start in range(0, count, PART_ROWS):
            block = range(start, min(start + PART_ROWS, count))
            ids = [f"b{i + 1:07d}" for i in block]
            titles = [rows[i % len(rows)][0] for i in block]
            overviews = [rows[i % len(rows)][1] for i in block]
            writer.writerows(zip(ids, titles, overviews, strict=True))
            part = pa.table({"id": ids, "title": titles, "overview": overviews})
            pq.write_table(part, parts / f"part-{start // PART_ROWS:04d}.parquet")


def first_rows(source: Path, count: int, target: Path) -> None:
    with source.open(encoding="utf-8", newline="") as stream, target.open("w", newline="") as out:
        reader, writer = csv.reader(stream), csv.writer(out)
        for number, record in enumerate(reader):
            if number > count:
                break
            writer.writerow(record)


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run(command: list[str]) -> dict[str, Any]:
    """Wall time and peak RSS of `command`; the summed RSS of its process tree as well."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            try:
                peak_tree = max(peak_tree, tree_rss(watched))
            except psutil.Error:
                pass
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    stderr = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{stderr}")
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,
        "tree_mb": peak_tree / 2**20,
        "summary": stderr.strip().splitlines()[-1],
    }


def predictions(path: Path) -> dict[str, tuple[Any, ...]]:
    data = pq.read_table(path, columns=["id", "predicted_genre", GENRES, SKIP_REASON])
    ids = data.column("id").to_pylist()
    rest = zip(*(data.column(n).to_pylist() for n in data.column_names[1:]), strict=True)
    return dict(zip(ids, (tuple(map(str, r)) for r in rest), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--model", type=Path, help="Model to score with; default: train `fast`.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows in the catalogue.")
    parser.add_argument("--small", type=int, default=100_000, help="Rows of the memory check.")
    parser.add_argument("--workers", type=int, default=2, help="Dask local workers.")
    parser.add_argument("--skip-dask", action="store_true", help="Only the single process.")
    arguments = parser.parse_args()
    files = data_files(arguments)
    tgplus = [sys.executable, "-m", "tgplus"]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="tgplus-bench-batch-") as scratch_name:
        scratch = Path(scratch_name)
        model = arguments.model
        if model is None:
            from tgplus.training import train

            model = scratch / "model"
            train(files, kind="fast", out=model)
        sources = text_files(files)
        rows = real_rows(sources)
        big_csv, parts = scratch / "catalogue.csv", scratch / "catalogue-parts"
        small_csv = scratch / "small.csv"
        write_catalogue(rows, arguments.rows, big_csv, parts)
        first_rows(big_csv, min(arguments.small, arguments.rows), small_csv)
        print(
            f"catalogue: {arguments.rows:,} rows cycling {len(rows):,} real rows of "
            f"{len(sources)} files under {', '.join(map(str, files))}; "
            f"CSV {big_csv.stat().st_size / 2**20:.0f} MB, "
            f"{len(list(parts.iterdir()))} Parquet parts; model: {model}"
        )
        results: list[dict[str, Any]] = []
        single_out = scratch / "single.parquet"
        for label, source, count, target in (
            (
                "1 process, CSV -> Parquet",
                small_csv,
                min(arguments.small, arguments.rows),
                scratch / "small.parquet",
            ),
            ("1 process, CSV -> Parquet", big_csv, arguments.rows, single_out),
        ):
            command = [*tgplus, "predict", "--model", str(model), "--input", str(source)]
            result = run([*command, "--output", str(target)])
            results.append({"run": label, "rows": count, **result})
        dask_out = scratch / "dask-out"
        if not arguments.skip_dask:
            command = [*tgplus, "predict", "--model", str(model), "--input", str(parts)]
            command += ["--output", str(dask_out), "--engine", "dask"]
            command += ["--workers", str(arguments.workers)]
            result = run(command)
            label = f"Dask {arguments.workers} workers, Parquet parts -> Parquet parts"
            results.append({"run": label, "rows": arguments.rows, **result})
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for row in results:
            row["rows/s"] = f"{row['rows'] / row['seconds']:,.0f}"
            row["wall s"] = f"{row['seconds']:.1f}"
            row["peak RSS MB"] = f"{row['peak_mb']:.0f}"
            row["tree MB"] = f"{row['tree_mb']:.0f}"
            row["cpu s"] = f"{row['cpu']:.1f}"
            row["per cpu"] = f"{row['rows'] / row['cpu']:,.0f}"
            row["rows"] = f"{row['rows']:,}"
        print(
            table(
                results,
                [
                    ("run", "run"),
                    ("rows", "rows"),
                    ("rows/s", "rows/s"),
                    ("wall s", "wall s"),
                    ("cpu s", "CPU s"),
                    ("per cpu", "rows per CPU-s"),
                    ("peak RSS MB", "peak RSS MB (main process)"),
                    ("tree MB", "peak RSS MB (process tree)"),
                ],
            )
        )
        for row in results:
            print(f"{row['run']} ({row['rows']} rows): {row['summary']}")
        if not arguments.skip_dask:
            single, dask = predictions(single_out), predictions(dask_out)
            differ = sum(single[key] != dask.get(key) for key in single)
            print(
                f"Dask vs 1 process: {len(single):,} and {len(dask):,} rows, "
                f"{differ:,} with different genres"
            )


if __name__ == "__main__":
    main()
