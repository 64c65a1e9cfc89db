"""`velourcity api` imports only what it serves: not the CLI, bench, chaos, demo or test helpers."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_SERVED = (
    "pipeline.cli",
    "velourcity_bench",
    "velourcity_chaos",
    "pipeline.demo",
    "pipeline.testing",
    "pipeline.api.fakes",
    "faust",
    "schemathesis",
)


def test_the_api_server_imports_none_of_the_tools() -> None:
    code = (
        "import json, sys, pipeline.api.server, pipeline.api.app; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({NOT_SERVED!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_test_fakes_are_not_in_the_runtime_package() -> None:
    import importlib.util

    assert importlib.util.find_spec("pipeline.api.fakes") is None
