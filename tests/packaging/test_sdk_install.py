"""The SDK installs alone (issue 15 §5): ``pip install ./sdk`` into a fresh virtualenv gives a working client.

The ``gridmarket-sdk`` distribution (sdk/pyproject.toml) is ``facilitator_sdk`` and ``protocol`` with
only their own dependencies: no Django, Celery, boto3 or docker. These tests install it from the
package registry (as scripts/bootstrap.sh installs the grid), so they fail, rather than skip, when
pip cannot reach it. They build from a copy of the three folders the distribution is made of, so
that setuptools' in-tree build leaves nothing in the repository (``sdk/build``, an egg-info at the
root) and no stale build output can reach the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.integration.conftest import start_grid

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The SDK's sources: its pyproject.toml finds the packages one level up (package-dir "..").
SOURCES = ("sdk", "facilitator_sdk", "protocol")
SDK_DEPENDENCIES = {"pydantic", "pynacl", "websockets", "httpx", "sniffio", "grpcio", "protobuf"}
NOT_INSTALLED = ("django", "channels", "celery", "ninja", "boto3", "docker", "redis", "uvicorn")

JOB = """
import json, sys
from facilitator_sdk import Client, JobSpec

with Client(sys.argv[1], sys.argv[2]) as client:
    job = client.run(JobSpec(command=["echo", "hi"], timing={"execution": 30}), timeout=60)
    print(json.dumps({"status": job.status, "exit_code": job.result.exit_code, "stdout": job.result.stdout}))
"""


def sdk_tree(into: Path) -> Path:
    """A copy of the SDK's sources laid out as in the repository; its ``sdk`` folder is what pip installs."""
    for name in SOURCES:
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    return into / "sdk"


def project(folder: str) -> dict:
    with open(ROOT / folder / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def clean_env() -> dict[str, str]:
    """The suite's environment without what would let the venv see the repository or the suite's venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)


def pip_failed(what: str, result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{what} failed (exit {result.returncode}); these tests need the package registry, as "
        f"scripts/bootstrap.sh does:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def isolation_flags(python: Path, cwd: Path) -> list[str]:
    """``--no-build-isolation`` when the venv's own setuptools satisfies sdk/pyproject.toml (>=68): faster."""
    probe = "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 68)"
    return ["--no-build-isolation"] if run([str(python), "-c", probe], cwd).returncode == 0 else []


def test_the_sdk_installs_alone_and_runs_a_job_on_a_local_grid(tmp_path: Path) -> None:
    source = sdk_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    created = run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    assert created.returncode == 0, created.stderr
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # pip installs while the grid starts (the grid runs on the suite's own interpreter); its output
    # goes to a file, so that a chatty pip never blocks on a full pipe.
    log = tmp_path / "pip.log"
    with log.open("w") as output:
        install = subprocess.Popen(
            [*pip, *isolation_flags(python, tmp_path), str(source)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        grid = start_grid(tmp_path / "grid")
    except BaseException:
        install.kill()
        install.wait()
        raise
    try:
        install.wait(timeout=180)
        installed = subprocess.CompletedProcess(install.args, install.returncode, log.read_text(), "")
        assert installed.returncode == 0, pip_failed("pip install ./sdk into a fresh venv", installed)

        where = run(
            [
                str(python),
                "-c",
                "import importlib.util, json, sys, facilitator_sdk, protocol;"
                f"print(json.dumps({{'missing': [n for n in {NOT_INSTALLED!r} if importlib.util.find_spec(n)],"
                "'facilitator_sdk': facilitator_sdk.__file__, 'protocol': protocol.__file__,"
                "'site': [p for p in sys.path if p.endswith('site-packages')]}))",
            ],
            tmp_path,
        )
        assert where.returncode == 0, where.stderr
        found = json.loads(where.stdout)
        assert found["missing"] == [], f"the SDK's venv has the grid's dependencies: {found['missing']}"
        site = Path(found["site"][0])
        assert site.resolve().is_relative_to(venv.resolve()), f"site-packages outside the venv: {site}"
        for package in ("facilitator_sdk", "protocol"):
            assert Path(found[package]).parent == site / package, f"{package} imports from {found[package]}"

        job = run([str(python), "-c", JOB, grid.facilitator_url, str(tmp_path / "client.key")], tmp_path)
        assert job.returncode == 0, job.stderr[-3000:]
        assert json.loads(job.stdout.strip().splitlines()[-1]) == {
            "status": "completed",
            "exit_code": 0,
            "stdout": "hi\n",
        }
    finally:
        grid.stop()


def test_the_sdk_wheel_holds_only_facilitator_sdk_and_protocol(tmp_path: Path) -> None:
    source = sdk_tree(tmp_path / "src")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path / "dist")], tmp_path
    )
    assert built.returncode == 0, pip_failed("pip wheel ./sdk", built)
    [wheel] = (tmp_path / "dist").glob("gridmarket_sdk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())

    dist_info = metadata.split("/")[0]
    assert {name.split("/")[0] for name in names} == {"facilitator_sdk", "protocol", dist_info}
    # Every module of the two packages (and the type stubs of the generated protobuf modules),
    # and nothing else (no tests, no stale build output).
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in ("facilitator_sdk", "protocol")
        for pattern in ("*.py", "*.pyi")
        for path in (ROOT / package).rglob(pattern)
        if "__pycache__" not in path.parts
    }
    assert {name for name in names if not name.startswith(dist_info)} == expected
    assert message["Name"] == "gridmarket-sdk"
    requires = {Requirement(line) for line in message.get_all("Requires-Dist")}
    assert requires == {Requirement(line) for line in project("sdk")["dependencies"]}
    assert {requirement.name for requirement in requires} == SDK_DEPENDENCIES
    # The grid needs the same client dependencies: the two pyproject.toml files agree on them.
    assert requires <= {Requirement(line) for line in project(".")["dependencies"]}
