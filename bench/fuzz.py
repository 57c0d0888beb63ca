"""Fuzz every operation of the API from its OpenAPI schema, far past the test suite's bound.

    python bench/fuzz.py [--model DIR] [--data FILE ...] [--examples 1000]

Runs schemathesis in process against `tgplus.api.create_app` (the test suite
runs 50 valid examples per operation; this runs `--examples` valid and as many
invalid ones per operation), checks
every response against the schema, and prints the cases run, the status counts,
the 5xx count and the log records that carry a traceback or an ERROR level.
The targets: zero 5xx, zero tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TMDB_FILES, data_arguments


class Records(logging.Handler):
    """Keeps the level and whether a traceback came with each record."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: Counter[str] = Counter()
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        if record.exc_info or "Traceback" in record.getMessage():
            self.tracebacks += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(parser)
    parser.add_argument("--model", type=Path, help="Model to serve; default: train `fast` now.")
    parser.add_argument("--examples", type=int, default=1000, help="Cases per operation.")
    arguments = parser.parse_args()

    import schemathesis
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Ok
    from schemathesis.specs.openapi.checks import status_code_conformance

    from tgplus.api import create_app
    from tgplus.config import Settings

    scratch = Path(tempfile.mkdtemp(prefix="tgplus-fuzz-"))
    model = arguments.model
    if model is None:
        from tgplus.training import train

        model = scratch / "model"
        train(arguments.data or TMDB_FILES, kind="fast", out=model)

    negative_checks = [not_a_server_error, status_code_conformance]

    def fuzz(strategy: Any, checks: list[Any] | None) -> None:
        @given(case=strategy)
        @settings(
            max_examples=arguments.examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call()
            statuses[response.status_code] += 1
            case.validate_response(response, checks=checks)

        check()

    records = Records()
    logging.getLogger().addHandler(records)
    logging.getLogger().setLevel(logging.INFO)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    with TestClient(create_app(Settings(model_path=model))) as client:
        api = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        operations = [r.ok() for r in api.get_all_operations() if isinstance(r, Ok)]
        modes = [GenerationMode("positive"), GenerationMode("negative")]
        for operation in operations:
            for mode in modes:
                # Invalid input gets only "no 5xx" and "a documented status": tgplus accepts
                # some schema-invalid requests by design (a description "model" reaches
                # /model), which the other checks would count as failures.
                checks = None if mode == "positive" else negative_checks
                try:
                    fuzz(operation.as_strategy(generation_mode=mode), checks)
                except Unsatisfiable:
                    pass  # nothing to make invalid: the operation takes no input
                except Exception as error:  # report every operation, then fail at the end
                    where = f"{operation.method.upper()} {operation.path} ({mode.value})"
                    failures.append(f"{where}: {error}")
    seconds = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    cases = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(f"operations: {len(operations)}; cases: {cases} in {seconds:.0f} s")
    print("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print(f"5xx: {server_errors}")
    print(f"log records: {dict(records.levels)}; with a traceback: {records.tracebacks}")
    for failure in failures:
        print(f"FAILED {failure.splitlines()[0]}")
    if server_errors or records.tracebacks or failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
