"""The package as a user installs it: built into a wheel and an sdist, installed into a
fresh virtual environment away from this repository, then used from the command line."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_bundle import GANGSTER

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
RUNTIME_FILES = {
    "tgplus/web/index.html",
    "tgplus/web/app.js",
    "tgplus/web/style.css",
    "tgplus/bundled/metadata.json",
    "tgplus/bundled/model.npz",
    "tgplus/py.typed",
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build`: the sdist, then the wheel built from it. No build isolation,
    so that the test needs no network; setuptools comes from the dev extra."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output
    for warning in ("same name as your package", "would be ignored", "absent from the"):
        assert warning not in output
    return out


def _only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_wheel_and_sdist_hold_what_runs_and_nothing_of_tests(dist: Path) -> None:
    wheel = set(zipfile.ZipFile(_only(dist, "*.whl")).namelist())
    with tarfile.open(_only(dist, "*.tar.gz")) as archive:
        sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for names in (wheel, sdist):
        assert RUNTIME_FILES <= names
        assert not [n for n in names if n.startswith(("tests/", "bench/", ".ci/", "data/"))]
    assert "pyproject.toml" in sdist
    assert "LICENSE" in sdist


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only the wheel installed in it. Its dependencies
    come from this environment, put on its path (a .pth file) rather than downloaded;
    this repository is not on its path, and the tests run it from another directory."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib) / "dependencies.pth").write_text("\n".join(sorted(here)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(_only(dist, "*.whl"))],
        check=True,
    )  # fmt: skip
    return root


def _environment() -> dict[str, str]:
    """This process's environment without anything that points at a model or the repository."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("TGPLUS_") and k != "PYTHONPATH"
    }


def test_installed_package_predicts_with_its_bundled_model(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    where = subprocess.run(
        [python, "-c", "import tgplus; print(tgplus.__file__)"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where).is_relative_to(venv)
    predicted = subprocess.run(
        [venv / "bin" / "tgplus", "predict", "--json", GANGSTER],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(predicted.stdout)[0]["genre"] == "Crime"
    assert "using the bundled model" in predicted.stderr
    assert predicted.stderr.count("\n") == 1


@pytest.fixture
def server(venv: Path, tmp_path: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [venv / "bin" / "tgplus", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as response:
                    assert json.loads(response.read())["status"] == "ready"
                    break
            except OSError:
                assert process.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not get ready"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)
    bundled = [line for line in log.splitlines() if "bundled" in line]
    assert len(bundled) == 1, log  # one line says which model it serves, and why


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text: str = response.read().decode("utf-8")
        return text


def test_installed_package_serves_page_docs_and_predictions(server: str) -> None:
    assert '<label for="description">' in _get(server + "/")
    docs = _get(server + "/docs")
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), f"/docs loads {asset} from elsewhere"
        _get(server + asset)
    model = json.loads(_get(server + "/model"))
    assert model["bundled"] is True
    answer = json.loads(_get(server + "/" + urllib.parse.quote(GANGSTER)))
    assert answer["genre"] == "Crime"
