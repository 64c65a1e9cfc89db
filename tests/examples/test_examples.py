"""The partner code examples (examples/), tested against webhooks signed by the pipeline itself.

The vectors come from examples/make_vectors.py (pipeline signing code, expected outcomes from
``pipeline.receiver.verify``); the Node/Express example runs its ``node --test`` suite on them,
the FastAPI example is driven here with TestClient.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NODE_EXAMPLE = EXAMPLES / "node-express"
NPM_TIMEOUT = 240
STAMP = ".velourcity-lock-sha256"  # in node_modules: the package-lock.json it was built from


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fresh vectors, written by the script exactly as a developer would run it."""
    out = tmp_path_factory.mktemp("vectors") / "vectors.json"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_vectors.py"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def vectors(vectors_file: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(vectors_file.read_text())
    return data


def _load(path: Path, name: str) -> ModuleType:
    """Import a file from examples/ (its folder names are not package names)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- (a) Node.js / Express ----------------------------------------------------------------


def _ensure_node_modules() -> None:
    """``npm ci`` when node_modules is missing or was built from another package-lock.json.

    A file lock keeps two test runs in one checkout from running npm ci over each other.
    """
    lock_hash = hashlib.sha256((NODE_EXAMPLE / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_EXAMPLE / "node_modules" / STAMP
    key = hashlib.sha256(str(NODE_EXAMPLE).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"velourcity-npm-ci-{key}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == lock_hash:
            return
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_EXAMPLE,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        stamp.write_text(lock_hash)


@pytest.mark.timeout(300)
def test_node_express_example(vectors_file: Path) -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: the Node.js example needs Node 20+")
    _ensure_node_modules()
    env = os.environ | {"VELOURCITY_VECTORS": str(vectors_file)}
    done = subprocess.run(
        ["node", "--test"],
        cwd=NODE_EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"node --test failed:\n{done.stdout}\n{done.stderr}"
    assert "# fail 0" in done.stdout, done.stdout


# --- (b) Python / FastAPI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_example() -> ModuleType:
    return _load(EXAMPLES / "python-fastapi" / "app.py", "velourcity_example_fastapi_app")


def _client(
    module: ModuleType, vectors: dict[str, Any], secrets: list[str], processed: list[Any]
) -> TestClient:
    app = module.create_app(secrets, on_event=processed.append, clock=lambda: vectors["now"])
    return TestClient(app)


def _post(client: TestClient, vector: dict[str, Any]) -> Any:
    # content=: the exact bytes, as the pipeline sent them.
    body = base64.b64decode(vector["body_b64"])
    return client.post("/webhooks", content=body, headers=vector["headers"])


def test_fastapi_example_answers_each_vector_as_the_sdk_says(
    fastapi_example: ModuleType, vectors: dict[str, Any]
) -> None:
    types = {v["event_type"] for v in vectors["vectors"] if "event_type" in v}
    assert len(types) == 6
    for vector in vectors["vectors"]:
        processed: list[Any] = []
        with _client(fastapi_example, vectors, vector["secrets"], processed) as client:
            response = _post(client, vector)
        expect = vector["expect"]
        assert response.status_code == expect["status"], (vector["name"], response.text)
        if expect["status"] == 200:
            assert response.json() == {"received": True}
            assert [e["id"] for e in processed] == [expect["event_id"]], vector["name"]
        else:
            assert "error" in response.json()
            assert processed == [], vector["name"]
            for secret in vector["secrets"]:
                assert secret not in response.text


def test_fastapi_example_processes_a_retried_delivery_once(
    fastapi_example: ModuleType, vectors: dict[str, Any]
) -> None:
    first, retry = (v for v in vectors["vectors"] if v.get("dedupe_group") == "retry")
    assert first["headers"]["webhook-id"] == retry["headers"]["webhook-id"]
    processed: list[Any] = []
    with _client(fastapi_example, vectors, first["secrets"], processed) as client:
        assert _post(client, first).json() == {"received": True}
        assert _post(client, retry).json() == {"received": True, "duplicate": True}
    assert [e["id"] for e in processed] == [first["expect"]["event_id"]]


def test_fastapi_example_lets_a_failed_event_through_again(
    fastapi_example: ModuleType, vectors: dict[str, Any]
) -> None:
    vector = next(v for v in vectors["vectors"] if v["name"] == "order.created")
    calls: list[str] = []

    def flaky(event: dict[str, Any]) -> None:
        calls.append(event["id"])
        if len(calls) == 1:
            raise RuntimeError("database down")

    app = fastapi_example.create_app(
        vector["secrets"], on_event=flaky, clock=lambda: vectors["now"]
    )
    with TestClient(app) as client:
        assert _post(client, vector).status_code == 200  # answered before the work failed
        assert _post(client, vector).json() == {"received": True}
    assert len(calls) == 2


def test_fastapi_example_refuses_a_bad_secret_at_start_up(fastapi_example: ModuleType) -> None:
    with pytest.raises(ValueError, match="base64"):
        fastapi_example.create_app("whsec_%%%")
    with pytest.raises(RuntimeError, match="VELOURCITY_WEBHOOK_SECRET"):
        fastapi_example.create_app([])
