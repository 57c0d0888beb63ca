"""Load-test the editors' side of the service: concurrent feedback writers, reload under load.

    python bench/feedback.py [--model DIR] [--seconds 20] [--postgres URL] [--only reload]

1. 16 concurrent writers POST distinct feedback for 20 s against a real
   `uvicorn tgplus.api:app` (1 and 2 workers), on SQLite and on PostgreSQL; then the rows in the
   database are counted: every 201 must be exactly one row (none lost, none
   duplicated) and no answer may be a 5xx. Prints writes/s and latency.
2. wrk drives POST /predict over 16 connections while the model is reloaded
   (POST /admin/reload) three times, each time a new artifact, on one uvicorn
   worker and on `tgplus serve --workers 2` (the worker a reload reaches tells the
   other): no request may fail, and every answer after the last reload must come
   from the last model.
3. Prediction latency (wrk, 1 and 16 connections): the service as before this
   feature (no token, nothing recorded), with the feedback store open but
   recording off, and with every prediction recorded; the three run side by
   side and are measured in alternating rounds (medians shown).

Without --postgres a throw-away PostgreSQL cluster is started with
`.ci/postgres.sh` (Debian's postgresql package) and stopped afterwards.
Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, data_arguments, data_files, percentile_ms, table
from bench.serve import lua_script, run_wrk, server

TOKEN = "bench-token"


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The given server, or a throw-away cluster started with .ci/postgres.sh."""
    if url:
        yield url
        return
    # Its own directory under /tmp: the `postgres` user must be able to reach it.
    directory = Path(tempfile.mkdtemp(prefix="tgplus-bench-postgres-"))
    started = subprocess.run(
        ["bash", str(ROOT / ".ci" / "postgres.sh"), "start", str(directory)],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        raise SystemExit(f"error: could not start PostgreSQL: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop", str(directory)])
        shutil.rmtree(directory, ignore_errors=True)


def fresh_postgres_database(url: str) -> str:
    """A new, empty database on the server at `url`: each run starts from nothing."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"tgplus_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def count_rows(database_url: str) -> tuple[int, int]:
    """(rows, distinct descriptions) in the feedback table."""
    from tgplus.feedback import FeedbackRepository, FeedbackStore

    store = FeedbackStore(database_url)
    try:
        with store.session() as session:
            rows = FeedbackRepository(store, session).feedback()
    finally:
        store.dispose()
    return len(rows), len({row.description for row in rows})


async def write_feedback(
    url: str, writers: int, seconds: float, texts: list[str], genres: list[str]
) -> dict[str, Any]:
    """`writers` clients, each POSTing distinct feedback back to back for `seconds`."""
    import httpx

    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def writer(number: int, client: httpx.AsyncClient) -> None:
        sent = 0
        while time.monotonic() < deadline:
            body = {
                "description": f"{texts[sent % len(texts)]} (writer {number}, answer {sent})",
                "suggested": genres[sent % 3 : sent % 3 + 2],
                "genres": genres[sent % 5 : sent % 5 + 2],
                "editor": f"writer-{number}",
            }
            started = time.perf_counter()
            response = await client.post("/feedback", json=body)
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1
            sent += 1

    started = time.monotonic()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=writers)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        await asyncio.gather(*(writer(n, c) for n in range(writers)))
    elapsed = time.monotonic() - started
    return {
        "statuses": dict(statuses),
        "elapsed": elapsed,
        "p50_ms": round(percentile_ms(latencies, 50), 2),
        "p99_ms": round(percentile_ms(latencies, 99), 2),
    }


def writers_run(
    name: str,
    database_url: str,
    model: Path,
    args: argparse.Namespace,
    texts: list[str],
    workers: int = 1,
) -> dict[str, Any]:
    env = {
        "TGPLUS_MODEL_PATH": str(model),
        "TGPLUS_API_TOKEN": TOKEN,
        "TGPLUS_DATABASE_URL": database_url,
        "TGPLUS_LOG_LEVEL": "warning",
    }
    genres = json.loads((model / "metadata.json").read_text())["genres"]
    log = args.scratch / f"writers-{name}-{workers}.log"
    with server("tgplus.api:app", env, "/health/ready", workers, log) as (url, _):
        result = asyncio.run(write_feedback(url, args.writers, args.seconds, texts, genres))
    rows, distinct = count_rows(database_url)
    created = result["statuses"].get(201, 0)
    server_errors = sum(n for status, n in result["statuses"].items() if status >= 500)
    return {
        "database": name,
        "workers": workers,
        "writers": args.writers,
        "seconds": round(result["elapsed"], 1),
        "answers": sum(result["statuses"].values()),
        "created": created,
        "rows": rows,
        "lost": max(created - rows, 0),
        "duplicated": max(rows - distinct, 0) + max(rows - created, 0),
        "5xx": server_errors,
        "writes_per_s": round(created / result["elapsed"]),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
    }


def new_artifact(source: Path, target: Path, generation: int) -> None:
    """Save the model at `source` again into `target` with a changed note: a new model id."""
    from tgplus.models import load_predictor, save_predictor

    predictor = load_predictor(source)
    predictor.metadata["bench_generation"] = generation
    save_predictor(predictor, target)


def served_ids(url: str, requests: int) -> set[str]:
    """The model ids in `requests` answers of GET /model, each on a new connection."""
    found = set()
    for _ in range(requests):
        with urllib.request.urlopen(url + "/model", timeout=10) as response:
            found.add(str(json.loads(response.read())["id"]))
    return found


def reload_under_load(
    model: Path, args: argparse.Namespace, script: Path, workers: int = 1
) -> dict[str, Any]:
    served = args.scratch / f"reloaded-model-{workers}"
    shutil.copytree(model, served)
    env = {
        "TGPLUS_MODEL_PATH": str(served),
        "TGPLUS_API_TOKEN": TOKEN,
        "TGPLUS_DATABASE_URL": f"sqlite:///{args.scratch / 'reload.sqlite3'}",
        "TGPLUS_LOG_LEVEL": "warning",
    }
    reloads: list[tuple[int, str]] = []
    seconds = 10

    def reload_three_times(url: str) -> None:
        for generation in (1, 2, 3):
            time.sleep(seconds / 4)
            new_artifact(model, served, generation)
            request = urllib.request.Request(
                url + "/admin/reload", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                reloads.append((response.status, json.loads(response.read())["id"]))

    log = args.scratch / f"reload-{workers}.log"
    several = workers > 1  # `tgplus serve`: a reload reaches every worker
    with server("tgplus.api:app", env, "/health/ready", workers, log, tgplus_serve=several) as (
        url,
        _,
    ):
        run_wrk(url, script, 16, 2)  # warm-up
        reloader = threading.Thread(target=reload_three_times, args=(url,))
        reloader.start()
        row = run_wrk(url, script, 16, seconds)
        reloader.join()
        time.sleep(2)  # the other workers look for a reload every 0.5 s
        stale = served_ids(url, 40) - {reloads[-1][1]} if reloads else set()
    return {
        **row,
        "server": f"tgplus serve --workers {workers}" if several else "uvicorn, 1 worker",
        "reloads": ", ".join(f"{status} -> {model_id[:12]}" for status, model_id in reloads),
        "stale": len(stale),
    }


def latency_runs(model: Path, args: argparse.Namespace, script: Path) -> list[dict[str, Any]]:
    """The three services side by side, measured in alternating rounds; medians over rounds.

    Alternating (A, B, C, A, B, C, ...) spreads the shared machine's changing
    load over every service alike, instead of handing it to whichever ran last.
    """
    base = {"TGPLUS_MODEL_PATH": str(model), "TGPLUS_LOG_LEVEL": "warning"}
    store = {"TGPLUS_API_TOKEN": TOKEN, "TGPLUS_DATABASE_URL": f"sqlite:///{args.scratch / 'l.db'}"}
    configurations = [
        ("no token, nothing recorded (as before)", base),
        ("feedback store open, recording off", {**base, **store}),
        ("every prediction recorded (SQLite)", {**base, **store, "TGPLUS_RECORD_PREDICTIONS": "1"}),
    ]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                server("tgplus.api:app", env, "/health/ready", 1, args.scratch / f"l{n}.log")
            )[0]
            for n, (_, env) in enumerate(configurations)
        ]
        for url in urls:
            run_wrk(url, script, 16, 2)  # warm-up
        for _ in range(args.rounds):
            for (label, _), url in zip(configurations, urls, strict=True):
                for connections in (1, 16):
                    row = run_wrk(url, script, connections, args.latency_seconds)
                    runs.setdefault((label, connections), []).append(row)
    rows = []
    for (label, connections), measured in runs.items():
        rows.append(
            {
                "service": label,
                "connections": connections,
                **{
                    key: statistics.median(r[key] for r in measured)
                    for key in ("rps", "p50_ms", "p99_ms")
                },
                "errors": sum(r["errors"] for r in measured),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--model", type=Path, help="Model to serve; default: train `fast` now.")
    parser.add_argument("--seconds", type=float, default=20, help="How long the writers write.")
    parser.add_argument("--writers", type=int, default=16, help="Concurrent feedback writers.")
    parser.add_argument("--latency-seconds", type=int, default=5, help="Length of wrk runs.")
    parser.add_argument("--rounds", type=int, default=3, help="Latency rounds (medians shown).")
    parser.add_argument(
        "--postgres", help="PostgreSQL server URL; default: start a throw-away one."
    )
    parser.add_argument("--only", choices=["reload"], help="Run only this part (reload: part 2).")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("error: wrk not found; install it (Debian: apt-get install wrk)")
    files = data_files(args)
    from tgplus.data import DEFAULT_SPLIT, load_movies, split_by_key
    from tgplus.training import train

    args.scratch = Path(tempfile.mkdtemp(prefix="tgplus-bench-feedback-"))
    model = args.model
    if model is None:
        model = args.scratch / "model"
        train(files, kind="fast", out=model)
    test = split_by_key(load_movies(files).movies, DEFAULT_SPLIT).test[:200]
    texts = [m.overview for m in test]
    script = args.scratch / "post.lua"
    requests: list[tuple[str, str, str | None]] = [
        ("POST", "/predict", json.dumps({"description": text})) for text in texts
    ]
    script.write_text(lua_script(requests), encoding="utf-8")

    writers = [] if args.only else feedback_writers(model, args, texts)
    reloads = [reload_under_load(model, args, script, workers) for workers in (1, 2)]
    print("\n## POST /predict at 16 connections for 10 s, model reloaded 3 times meanwhile")
    print(
        table(
            reloads,
            [
                ("server", "server"),
                ("rps", "requests/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("errors", "failed requests"),
                ("reloads", "reloads (status -> new id)"),
                ("stale", "answers from an older model after the last reload (of 40)"),
            ],
        )
    )
    if not args.only:
        latency_report(model, args, script)
    shutil.rmtree(args.scratch, ignore_errors=True)
    failed = [w for w in writers if w["lost"] or w["duplicated"] or w["5xx"]]
    if failed or any(r["errors"] or r["stale"] for r in reloads):
        raise SystemExit("error: a target was missed (see the tables above)")


def feedback_writers(
    model: Path, args: argparse.Namespace, texts: list[str]
) -> list[dict[str, Any]]:
    """Part 1, printed: the writers on SQLite and PostgreSQL, 1 and 2 workers."""
    writers = [
        writers_run("SQLite", f"sqlite:///{args.scratch / f'w{n}.db'}", model, args, texts, n)
        for n in (1, 2)
    ]
    with postgres(args.postgres) as server_url:
        for workers in (1, 2):
            database = fresh_postgres_database(server_url)
            writers.append(writers_run("PostgreSQL", database, model, args, texts, workers))
    print(f"## {args.writers} concurrent feedback writers, {args.seconds:g} s")
    print(
        table(
            writers,
            [
                ("database", "database"),
                ("workers", "uvicorn workers"),
                ("answers", "answers"),
                ("created", "201 created"),
                ("rows", "rows in table"),
                ("lost", "lost"),
                ("duplicated", "duplicated"),
                ("5xx", "5xx"),
                ("writes_per_s", "writes/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
            ],
        )
    )
    return writers


def latency_report(model: Path, args: argparse.Namespace, script: Path) -> None:
    """Part 3, printed."""
    latency = latency_runs(model, args, script)
    print(
        f"\n## POST /predict latency: median of {args.rounds} alternating rounds of "
        f"{args.latency_seconds} s (wrk)"
    )
    print(
        table(
            latency,
            [
                ("service", "service"),
                ("connections", "connections"),
                ("rps", "requests/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("errors", "errors"),
            ],
        )
    )


if __name__ == "__main__":
    main()
