"""``pip install .`` (not editable) into a fresh virtual environment works.

The wheel is built from this checkout, installed into a new venv, and run
from a folder that is not the checkout: the defaults must ship inside the
package, and the store must land in the documented per-user folder, not in
site-packages. pip may use its local cache; the test is skipped only outside
CI when the dependencies cannot be fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import store_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    bin: Path
    site_packages: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "model-assigner"), *args], cwd=self.workdir,
            env={**self.env, **extra}, capture_output=True, text=True, timeout=60,
        )


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def _unavailable(what: str, result: subprocess.CompletedProcess[str]) -> None:
    message = f"{what} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(f"offline? {message}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    # Build from a clean copy: no egg-info or build/ of an editable install leaks in.
    # symlinks=True: the copy keeps the checkout's layout (model_assigner/core
    # and model_assigner/bot are relative links to ../core and ../bot, which
    # are copied too), so the wheel is built from what a checkout really has.
    shutil.copytree(
        ROOT, source, symlinks=True,
        ignore=shutil.ignore_patterns(".venv", "venv", ".git", "build", "dist", "*.egg-info",
                                      "__pycache__", ".*_cache", ".hypothesis", "data", "tests"),
    )
    built = _pip(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"),
                 str(source), cwd=base)
    if built.returncode != 0:
        _unavailable("building the wheel", built)
    for link in ("core", "bot"):
        assert (source / "model_assigner" / link).is_symlink(), link
    wheel = next((base / "dist").glob("model_assigner-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = _pip(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), cwd=base)
    if done.returncode != 0:
        _unavailable("installing the wheel", done)
    site = next((venv / "lib").glob("python3*/site-packages"))
    workdir = base / "elsewhere"
    workdir.mkdir()
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "MODEL_ASSIGNER_", "PROMETHEUS_")) and key != "PORT"
    }
    env["XDG_DATA_HOME"] = str(base / "xdg")
    env.pop("PYTHONPATH", None)
    return Installed(venv / "bin", site, workdir, env)


def test_the_wheel_ships_the_defaults_inside_the_package(installed: Installed) -> None:
    shipped = installed.site_packages / "model_assigner" / "bot" / "shipped"
    for name in ("scoring.yaml", "models.yaml", "subscriptions.yaml", "labels.yaml"):
        assert (shipped / "config" / name).read_bytes() == (ROOT / "config" / name).read_bytes()
    # The links were followed into real folders holding the modules.
    for folder in ("core", "bot"):
        installed_folder = installed.site_packages / "model_assigner" / folder
        assert installed_folder.is_dir() and not installed_folder.is_symlink(), folder
        assert (installed_folder / "__init__.py").is_file(), folder
    # Nothing generic lands at the top of site-packages: one import name, ours.
    for generic in ("config", "core", "bot", "tests", "bench"):
        assert not (installed.site_packages / generic).exists(), generic
    dist_info = next(installed.site_packages.glob("model_assigner-*.dist-info"))
    top_level = dist_info / "top_level.txt"
    if top_level.exists():
        assert top_level.read_text().split() == ["model_assigner"]
    record = (dist_info / "RECORD").read_text().splitlines()
    assert {line.split("/")[0] for line in record} == {"model_assigner", dist_info.name} | {
        line.split("/")[0] for line in record if line.startswith("../")
    }


def test_assign_and_config_work_from_another_folder(installed: Installed) -> None:
    shutil.copy(ROOT / "examples" / "seed-task.yaml", installed.workdir)
    result = installed.run("assign", "seed-task.yaml", "--now", "2026-02-10T12:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "sonnet-4.5" in result.stdout and "78.7/100" in result.stdout

    shown = installed.run("config", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["scoring"]["priority_weights"]["P0"] == 40
    assert {m["name"] for m in document["models"]} >= {"sonnet-4.5", "opus-4.6"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(installed: Installed) -> Iterator[tuple[Installed, int]]:
    port = _free_port()
    env = {**installed.env, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    # A file, not a pipe: nobody reads gunicorn's log while it runs, and a
    # full pipe would block its writes.
    log = installed.workdir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(installed.bin / "model-assigner"), "serve"], cwd=installed.workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=out, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = log.read_text(errors="replace")
                    pytest.fail(f"serve did not come up: {stderr[-2000:]}")
                time.sleep(0.2)
        yield installed, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_serve_in_dry_run_from_another_folder(served: tuple[Installed, int]) -> None:
    installed, port = served
    sample = installed.run("send-sample", PORT=str(port))
    assert sample.returncode == 0, sample.stdout + sample.stderr
    assert '"status": "assigned"' in sample.stdout
    store = Path(installed.env["XDG_DATA_HOME"]) / "model-assigner" / "data" / "state.json"
    assert "Codertocat/Hello-World#1" in json.loads(store_text(store))["reservations"]
    assert not (installed.site_packages / "data").exists()
    # The operator commands find the same store without being told where it is.
    listed = installed.run("reservations", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "Codertocat/Hello-World#1" in json.loads(listed.stdout)


def test_every_import_of_our_code_goes_through_the_one_import_name() -> None:
    """In a checkout ``core`` and ``bot`` are also importable bare (the
    repository root is on sys.path); a module imported under both names would
    exist twice, with two copies of its state. Only ``model_assigner.`` is used."""
    import re

    bare = re.compile(r"^\s*(from|import)\s+(core|bot)(\.|\s|$)", re.M)
    offenders = []
    for folder in ("core", "bot", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            for match in bare.finditer(path.read_text(encoding="utf-8")):
                line = path.read_text(encoding="utf-8").count("\n", 0, match.start()) + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == []
    for link in ("core", "bot"):
        target = ROOT / "model_assigner" / link
        assert target.is_symlink() and target.resolve() == (ROOT / link).resolve()
