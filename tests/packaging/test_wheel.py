"""The wheels users install work outside the repository.

Builds the SDK's and the server's wheels from a copy of only what the Dockerfile copies, installs
both into a fresh venv in a temp folder (outside the checkout, so nothing can come from it), and
from there runs ``velourcity topics create``, a ``velourcity worker``, ``velourcity endpoints
create`` and ``velourcity trigger``: the webhook must arrive, signed, at a real HTTP receiver on
127.0.0.1. pip installs the dependencies from its cache (or PyPI the first time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Receiver
from velourcity_webhooks import verify
from velourcity_webhooks.testing import new_secret

from pipeline.processes import stop_process
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

# What the Dockerfile's build stage copies: the wheels must build from this alone.
SERVER_SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "pipeline", "schemas"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheels")
    server = work / "server"
    server.mkdir()
    for name in SERVER_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, server / name, ignore=IGNORE)
        else:
            shutil.copy2(source, server / name)
    sdk = work / "sdk"
    shutil.copytree(ROOT / "sdk" / "python", sdk, ignore=IGNORE)
    dist = work / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(sdk)],
        cwd=work,
        env=dict(os.environ),
        timeout=300,
    )
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(server)],
        cwd=work,
        env=dict(os.environ),
        timeout=300,
    )
    (sdk_wheel,) = dist.glob("velourcity_webhooks_sdk-*.whl")
    (server_wheel,) = dist.glob("velourcity_webhooks-*.whl")
    return {"sdk": sdk_wheel, "server": server_wheel}


def test_the_server_wheel_ships_the_schemas_and_no_test_code(wheels: dict[str, Path]) -> None:
    names = zipfile.ZipFile(wheels["server"]).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("pipeline/events/schemas/"))
    assert shipped == sorted(p.name for p in (ROOT / "schemas").glob("*.avsc"))
    assert "pipeline/api/fakes.py" not in names
    # the benchmark and the chaos suite are development tools (tools/), not the server's
    assert not [n for n in names if n.startswith(("pipeline/bench/", "pipeline/chaos/"))]
    assert not [n for n in names if n.startswith(("velourcity_bench/", "velourcity_chaos/"))]
    assert not [n for n in names if n.startswith(("tests/", "sdk/", "velourcity_webhooks/"))]
    metadata = zipfile.ZipFile(wheels["server"]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    assert b"Requires-Dist: velourcity-webhooks-sdk==" in metadata
    assert b"License-Expression: LicenseRef-Proprietary" in metadata


def test_the_sdk_wheel_has_no_dependencies(wheels: dict[str, Path]) -> None:
    archive = zipfile.ZipFile(wheels["sdk"])
    names = archive.namelist()
    assert "velourcity_webhooks/py.typed" in names
    metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires == ['Requires-Dist: fastapi>=0.100; extra == "fastapi"']


def test_installed_wheel_delivers_a_webhook_from_any_folder(
    wheels: dict[str, Path],
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    receiver_factory: Callable[..., Receiver],
) -> None:
    home = tmp_path / "elsewhere"
    home.mkdir()
    assert ROOT not in home.parents
    venv.create(home / "venv", with_pip=True)
    bin_dir = home / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    run(
        [str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check",
         str(wheels["sdk"]), str(wheels["server"])],
        cwd=home,
        env=env,
        timeout=600,
    )  # fmt: skip
    where = run(
        [str(bin_dir / "python"), "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=home,
        env=env,
    )
    assert where.startswith(str(home / "venv")), where
    # pipeline.testing runs its Avro check from the installed wheel (it used to skip it there).
    avro_check = (
        "from pipeline.exceptions import InvalidEvent; from pipeline.testing import "
        "make_signed_request as make; from velourcity_webhooks.testing import new_secret\n"
        "try:\n    make('order.created', new_secret(), total='a lot')\n"
        "except InvalidEvent:\n    print('refused')"
    )
    assert run([str(bin_dir / "python"), "-c", avro_check], cwd=home, env=env) == "refused\n"

    # the development tools are not there: their commands say so in one line
    missing = subprocess.run(
        [str(bin_dir / "velourcity"), "bench"], cwd=home, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: velourcity bench is a development tool, not part of the server package: run it"
        " from a checkout after `make install` (it installs tools/, velourcity-devtools)"
    ]

    settings = settings_factory()
    env = {**settings.as_environment(), **{k: v for k, v in env.items() if k == "PATH"}}
    env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    cli = str(bin_dir / "velourcity")
    run([cli, "topics", "create"], cwd=home, env=env)
    run([cli, "db", "migrate"], cwd=home, env=env)  # endpoints live in PostgreSQL
    receiver = receiver_factory()
    secret = new_secret()
    created: dict[str, Any] = json.loads(
        run(
            [cli, "endpoints", "create", "--account", "acct_wheel", "--url", receiver.url,
             "--secret", secret, "--json"],
            cwd=home,
            env=env,
        )
    )  # fmt: skip
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [cli, "worker"], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        triggered = run(
            [cli, "trigger", "order.created", "--account", "acct_wheel", "--json"],
            cwd=home,
            env=env,
        )
        event_id = json.loads(triggered.splitlines()[0])["id"]
        try:
            (request,) = receiver.wait_for(1, timeout=120)
        except AssertionError:
            pytest.fail(f"no delivery; worker log:\n{log_path.read_text(errors='replace')}")
    finally:
        stop_process(worker, 30)
    event = verify(request.headers, request.body, secret)
    assert event["id"] == event_id
    assert event["type"] == "order.created"
    assert event["account_id"] == "acct_wheel"
    assert request.headers["X-Velourcity-Event"] == "order.created"
    assert created["url"] == receiver.url
