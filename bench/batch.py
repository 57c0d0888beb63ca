"""Batch scoring at catalogue scale: one process streaming, then Dask with local workers.

    python bench/batch.py [--data FILE ...] [--model DIR] [--rows 1000000] [--workers 2]
        [--repeat 1]

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
genres on every row. The last lines hold the verdicts against the issue's
targets, from the fastest run of each kind (`--repeat N` alternates N runs of
each engine: on a shared machine the fastest is the least disturbed); run it
when `uptime` shows a load average well under 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
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


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(command: list[str]) -> dict[str, Any]:
    """Wall time and peak RSS of `command`; the summed RSS of its process tree as well."""
    load_before = load_average()
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
        "command": " ".join(command),
        "load": f"{load_before} -> {load_average()}",
    }


def revision() -> str:
    """The checkout's commit (and whether it has changes), for the record."""
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.stdout.strip()


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
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs of each engine, alternating; the verdicts use the fastest of each.",
    )
    arguments = parser.parse_args()
    files = data_files(arguments)
    tgplus = [sys.executable, "-m", "tgplus"]
    print(f"tgplus {revision()}, {os.cpu_count()} CPUs, load average at start: {load_average()}")
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
        small, single, dask = [], [], []
        single_out, dask_out = scratch / "single.parquet", scratch / "dask-out"
        for _ in range(arguments.repeat):
            command = [*tgplus, "predict", "--model", str(model), "--input", str(small_csv)]
            small.append(run([*command, "--output", str(scratch / "small.parquet")]))
            command = [*tgplus, "predict", "--model", str(model), "--input", str(big_csv)]
            single.append(run([*command, "--output", str(single_out)]))
            if not arguments.skip_dask:
                shutil.rmtree(dask_out, ignore_errors=True)
                command = [*tgplus, "predict", "--model", str(model), "--input", str(parts)]
                command += ["--output", str(dask_out), "--engine", "dask"]
                command += ["--workers", str(arguments.workers)]
                dask.append(run(command))
        print(f"load average at end: {load_average()}")
        count_small = min(arguments.small, arguments.rows)
        results = [
            *({"run": "1 process, CSV -> Parquet", "rows": count_small, **r} for r in small),
            *({"run": "1 process, CSV -> Parquet", "rows": arguments.rows, **r} for r in single),
            *(
                {
                    "run": f"Dask {arguments.workers} workers, Parquet parts -> Parquet parts",
                    "rows": arguments.rows,
                    **r,
                }
                for r in dask
            ),
        ]
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
                    ("load", "load average before -> after"),
                ],
            )
        )
        for row in results:
            print(f"{row['run']} ({row['rows']} rows): {row['command']}\n  {row['summary']}")
        print(verdicts(small, single, dask, arguments))
        if dask:
            single_rows, dask_rows = predictions(single_out), predictions(dask_out)
            differ = sum(single_rows[key] != dask_rows.get(key) for key in single_rows)
            print(
                f"Dask vs 1 process: {len(single_rows):,} and {len(dask_rows):,} rows, "
                f"{differ:,} with different genres"
            )


def verdicts(
    small: list[dict[str, Any]],
    single: list[dict[str, Any]],
    dask: list[dict[str, Any]],
    arguments: argparse.Namespace,
) -> str:
    """The issue's targets against the fastest run of each kind (the least disturbed one)."""
    best_single = min(r["seconds"] for r in single)
    single_rate = arguments.rows / best_single
    peak, peak_small = max(r["peak_mb"] for r in single), max(r["peak_mb"] for r in small)
    count_small = min(arguments.small, arguments.rows)
    lines = [
        f"1 process: {single_rate:,.0f} rows/s (target >= 8,000); peak RSS {peak:.0f} MB at "
        f"{arguments.rows:,} rows vs {peak_small:.0f} MB at {count_small:,} rows "
        f"({peak / peak_small - 1:+.0%}; target <= 400 MB and within 10%)"
    ]
    if dask:
        dask_rate = arguments.rows / min(r["seconds"] for r in dask)
        lines.append(
            f"Dask {arguments.workers} workers / 1 process: {dask_rate:,.0f} / {single_rate:,.0f} "
            f"rows/s = {dask_rate / single_rate:.2f}x (target >= 1.6x with 2 workers on 2 idle "
            "cores; other jobs on the machine lower it)"
        )
    if arguments.repeat > 1:
        lines.append(f"(fastest of {arguments.repeat} alternating runs of each)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
