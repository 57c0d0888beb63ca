"""Soak the real server: mixed valid, invalid and oversized requests, with a restart midway.

    python bench/soak.py [--model DIR] [--seconds 600] [--connections 32]

Starts `tgplus serve` (the protocol and limits users run), drives it from
`--connections` keep-alive connections for `--seconds` with a mix of valid
requests (about 60%), invalid ones (25%: empty, NaN top_k, bad escapes, wrong
methods, unknown and traversal-looking paths) and oversized ones (15%: bodies
over the byte limit, descriptions over the length limit, batches over the item
limit), and restarts the server halfway (a model reload: the new process loads
the model from disk). Every description carries a marker word; at the end the
server's log is searched for it and for tracebacks. Prints the requests, the
status counts, p50/p99 latency, the server's RSS (start, middle, after the
restart, end) and what the log holds. Targets: no 5xx, no traceback, no
marker in the log, RSS growth <= 20 MB per process. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, TMDB_FILES, data_arguments, percentile_ms

MARKER = "zanzibarquokka"  # in every description; must never reach the log
CONNECTION_ERROR = 0  # status recorded when the server was not there (the restart)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    return rss, peak


def start_server(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TGPLUS_MODEL_PATH": str(model), "TGPLUS_LOG_LEVEL": "info"}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tgplus", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=output,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            url = f"http://127.0.0.1:{port}/health/ready"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"error: the server did not become ready; see {log}")
        time.sleep(0.2)


def request_mix(descriptions: list[str]) -> list[tuple[int, str, str, str, bytes | None]]:
    """(weight, kind, method, path, body) choices; bodies are JSON bytes."""

    def body(value: Any) -> bytes:
        return json.dumps(value).encode()

    one = descriptions[0]
    return [
        # valid
        (25, "valid", "GET", "/{quoted}", None),
        (20, "valid", "POST", "/predict", b"{description}"),
        (10, "valid", "POST", "/predict/batch", b"{batch}"),
        (5, "valid", "GET", "/health/ready", None),
        # invalid
        (4, "invalid", "POST", "/predict", body({"description": "  "})),
        (4, "invalid", "POST", "/predict", b'{"description": "a heist", "top_k": NaN}'),
        (3, "invalid", "POST", "/predict", b"{not json"),
        (3, "invalid", "GET", "/100%", None),
        (3, "invalid", "GET", "/predict/batch", None),
        (3, "invalid", "DELETE", "/predict", None),
        (3, "invalid", "GET", "/static/r{n}/missing.js", None),
        (2, "invalid", "POST", "/nowhere/{n}", body({"description": one})),
        # oversized
        (1, "oversized", "POST", "/predict/batch", b"{huge}"),
        (7, "oversized", "POST", "/predict", body({"description": one * 60})),
        (7, "oversized", "POST", "/predict/batch", body({"descriptions": [one] * 300})),
    ]


async def run_load(
    port: int,
    descriptions: list[str],
    seconds: float,
    connections: int,
    restart_at: float,
    restart: Any,
) -> tuple[Counter[int], Counter[str], list[float]]:
    import httpx

    mix = request_mix(descriptions)
    weights = [w for w, *_ in mix]
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    latencies: list[float] = []
    huge = b'{"descriptions": ["' + b"x" * (3 * 1024 * 1024) + b'"]}'
    deadline = time.monotonic() + seconds
    restarting = asyncio.Event()
    restarted = asyncio.Event()

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as client:
            while time.monotonic() < deadline:
                if restarting.is_set() and not restarted.is_set():
                    await restarted.wait()
                _, kind, method, path, body = rng.choices(mix, weights)[0]
                text = f"{rng.choice(descriptions)} {MARKER}"
                path = path.format(quoted=urllib.parse.quote(text, safe=""), n=rng.randrange(10**9))
                if body == b"{description}":
                    body = json.dumps({"description": text, "top_k": rng.randint(1, 5)}).encode()
                elif body == b"{batch}":
                    batch = [f"{d} {MARKER}" for d in rng.sample(descriptions, 10)]
                    body = json.dumps({"descriptions": batch}).encode()
                elif body == b"{huge}":
                    body = huge
                headers = {"content-type": "application/json"} if body is not None else {}
                started = time.perf_counter()
                try:
                    response = await client.request(method, path, content=body, headers=headers)
                    status = response.status_code
                except httpx.TransportError:
                    status = CONNECTION_ERROR
                elapsed = time.perf_counter() - started
                statuses[status] += 1
                kinds[kind] += 1
                if status != CONNECTION_ERROR:
                    latencies.append(elapsed)

    async def restarter() -> None:
        await asyncio.sleep(restart_at)
        restarting.set()
        await asyncio.to_thread(restart)
        restarted.set()

    await asyncio.gather(*(worker(i) for i in range(connections)), restarter())
    return statuses, kinds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--model", type=Path, help="Model to serve; default: train `fast` now.")
    parser.add_argument("--seconds", type=float, default=600, help="Length of the soak.")
    parser.add_argument("--connections", type=int, default=32, help="Concurrent connections.")
    arguments = parser.parse_args()

    from tgplus.data import load_movies

    files = arguments.data or TMDB_FILES
    scratch = Path(tempfile.mkdtemp(prefix="tgplus-soak-"))
    model = arguments.model
    if model is None:
        from tgplus.training import train

        model = scratch / "model"
        train(files, kind="fast", out=model)
    descriptions = [m.overview for m in load_movies(files).movies[:500]]
    port = free_port()
    log = scratch / "server.log"
    memory: dict[str, tuple[float, float]] = {}
    server = start_server(model, port, log)
    processes = [server]

    def restart() -> None:
        memory["middle (before the restart)"] = rss_mb(processes[-1].pid)
        processes[-1].terminate()
        processes[-1].wait(timeout=30)
        processes.append(start_server(model, port, log))
        time.sleep(1)
        memory["after the restart"] = rss_mb(processes[-1].pid)

    async def soak() -> tuple[Counter[int], Counter[str], list[float]]:
        async def sample_start() -> None:
            await asyncio.sleep(min(10.0, arguments.seconds / 10))
            memory["start (after warm-up)"] = rss_mb(processes[-1].pid)

        sampler = asyncio.create_task(sample_start())
        result = await run_load(
            port,
            descriptions,
            arguments.seconds,
            arguments.connections,
            arguments.seconds / 2,
            restart,
        )
        await sampler
        return result

    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        statuses, kinds, latencies = asyncio.run(soak())
        memory["end"] = rss_mb(processes[-1].pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics_bytes = len(response.read())
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    elapsed = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    total = sum(statuses.values())
    print(
        f"soak: {elapsed:.0f} s, {arguments.connections} connections, restart at "
        f"{arguments.seconds / 2:.0f} s; load average before {load_before[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f}"
    )
    print(f"requests: {total:,} ({total / elapsed:.0f}/s); by kind: {dict(kinds)}")
    print(
        "statuses: "
        + ", ".join(
            f"{'no connection' if s == CONNECTION_ERROR else s}: {n:,}"
            for s, n in sorted(statuses.items())
        )
    )
    print(f"5xx: {sum(n for s, n in statuses.items() if s >= 500)} (of which 503: {statuses[503]})")
    print(
        f"latency: p50 {percentile_ms(latencies, 50):.2f} ms, "
        f"p99 {percentile_ms(latencies, 99):.2f} ms"
    )
    for label, (rss, peak) in memory.items():
        print(f"server RSS {label}: {rss:.0f} MB (peak so far {peak:.0f} MB)")
    print(f"/metrics at the end: {metrics_bytes:,} bytes")
    tracebacks = sum("Traceback" in line for line in lines)
    errors = sum('"level": "error"' in line for line in lines)
    print(
        f"server log: {len(lines):,} lines, {tracebacks} with a traceback, {errors} errors, "
        f"marker word found {text.count(MARKER)} times"
    )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
