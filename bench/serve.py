"""Load-test the HTTP service next to a bare FastAPI endpoint, in the same run.

    python bench/serve.py [--data FILE ...] [--model DIR] [--seconds 10]

Starts each server on 127.0.0.1 with uvicorn (one worker, as `tgplus serve`),
drives it with wrk from a separate process for a fixed time at 1 and at 16
connections, and prints requests/s, p50/p99 latency and errors, then the
server's memory. Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, data_arguments, data_files, table


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(
    app: str,
    env: dict[str, str],
    ready_path: str,
    workers: int,
    log: Path,
    *,
    tgplus_serve: bool = False,
) -> Iterator[tuple[str, int]]:
    """uvicorn serving `app` (or `tgplus serve` with `tgplus_serve`: the CLI's limits and its
    several-worker reload); its output (tgplus's JSON request lines) goes to `log`."""
    port = free_port()
    listen = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command = (
        [sys.executable, "-m", "tgplus", "serve", *listen]
        if tgplus_serve
        else [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            *listen,
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    )
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=output, stderr=output
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + ready_path, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"error: {app} did not become ready; see {log}")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def lua_script(requests: list[tuple[str, str, str | None]]) -> str:
    """A wrk script cycling through (method, path, body) requests."""
    items = ",\n".join(
        f'  {{"{m}", [==[{p}]==], {"[==[" + b + "]==]" if b else "nil"}}}' for m, p, b in requests
    )
    return (
        f"local requests = {{\n{items}\n}}\nlocal i = 0\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #requests + 1\n  local r = requests[i]\n"
        "  return wrk.format(r[1], r[2], nil, r[3])\nend\n"
    )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))

    def parse(text: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return _ms(number, unit)

    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in match.groups())
    return {
        "connections": connections,
        "rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))),  # type: ignore[union-attr]
        "p50_ms": round(parse(latency["50"]), 3),
        "p99_ms": round(parse(latency["99"]), 3),
        "errors": errors,
    }


def memory_mb(pid: int) -> tuple[float, float, bool]:
    """Resident and peak memory of a server and its worker processes; torch mapped in?"""
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    rss = peak = 0.0
    torch = False
    for one in pids:
        status = Path(f"/proc/{one}/status").read_text()
        rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        peak += int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        torch = torch or "libtorch" in Path(f"/proc/{one}/maps").read_text()
    return rss, peak, torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--model", type=Path, help="Model to serve; default: train `fast` now.")
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    arguments = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("error: wrk not found; install it (Debian: apt-get install wrk)")
    files = data_files(arguments)
    from tgplus.data import DEFAULT_SPLIT, load_movies, split_by_key
    from tgplus.training import train

    scratch = Path(tempfile.mkdtemp(prefix="tgplus-bench-"))
    model = arguments.model
    if model is None:
        model = scratch / "model"
        train(files, kind="fast", out=model)
    test = split_by_key(load_movies(files).movies, DEFAULT_SPLIT).test[:200]
    by_path: list[tuple[str, str, str | None]] = [
        ("GET", "/" + urllib.parse.quote(m.overview, safe=""), None) for m in test
    ]
    by_post: list[tuple[str, str, str | None]] = [
        ("POST", "/predict", json.dumps({"description": m.overview})) for m in test
    ]
    scripts = {}
    bare: list[tuple[str, str, str | None]] = [("GET", "/x", None)]
    for name, requests in (("bare", bare), ("path", by_path), ("post", by_post)):
        scripts[name] = scratch / f"{name}.lua"
        scripts[name].write_text(lua_script(requests), encoding="utf-8")

    rows: list[dict[str, Any]] = []
    memory: dict[str, tuple[float, float, bool]] = {}
    served = {"TGPLUS_MODEL_PATH": str(model)}
    targets = [
        ("bare FastAPI, constant JSON", "bench.bare_app:app", {}, "/ready", 1, ["bare"]),
        (
            "tgplus GET /<description>",
            "tgplus.api:app",
            served,
            "/health/ready",
            1,
            ["path", "post"],
        ),
        ("bare FastAPI, constant JSON", "bench.bare_app:app", {}, "/ready", 2, ["bare"]),
        ("tgplus GET /<description>", "tgplus.api:app", served, "/health/ready", 2, ["path"]),
    ]
    for label, app, env, ready, workers, names in targets:
        log = scratch / f"{app.split(':')[0]}-{workers}.log"
        with server(app, env, ready, workers, log) as (url, pid):
            for name in names:
                for connections in (1, 16):
                    run_wrk(url, scripts[name], connections, 2)  # warm-up
                    row = run_wrk(url, scripts[name], connections, arguments.seconds)
                    title = label if name != "post" else "tgplus POST /predict"
                    rows.append({"target": title, "workers": workers, **row})
            memory[f"{label}, {workers} worker(s)"] = memory_mb(pid)
    for row in rows:
        floor = next(
            r["rps"]
            for r in rows
            if r["target"].startswith("bare")
            and r["connections"] == 16
            and r["workers"] == row["workers"]
        )
        row["vs_bare"] = f"{row['rps'] / floor:.0%}" if row["connections"] == 16 else ""
    print(f"model: {model}; wrk -t1, {arguments.seconds} s per run, 200 distinct test descriptions")
    print(
        table(
            rows,
            [
                ("target", "target"),
                ("connections", "connections"),
                ("rps", "requests/s"),
                ("vs_bare", "vs bare @16"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("errors", "errors"),
            ],
        )
    )
    for label, (rss, peak, torch) in memory.items():
        print(
            f"{label}: RSS {rss:.0f} MB (peak {peak:.0f} MB), "
            f"torch loaded: {'yes' if torch else 'no'}"
        )
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(
            json.dumps({"rows": rows, "memory_mb": {k: v[0] for k, v in memory.items()}}, indent=2)
        )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
