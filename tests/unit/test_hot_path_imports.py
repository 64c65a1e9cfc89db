"""The hot path does not touch PostgreSQL: a worker (fan-out and sender) imports neither
psycopg nor the packages that use it, so a database outage cannot reach a delivery."""

from __future__ import annotations

import json
import subprocess
import sys

DATABASE = ("psycopg", "psycopg_pool", "pipeline.db", "pipeline.deliverylog")


def test_a_worker_imports_nothing_of_the_database() -> None:
    code = (
        "import json, sys, pipeline.worker, pipeline.fanout, pipeline.delivery.handler; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({DATABASE!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_api_does() -> None:  # the check above would pass with a misspelt name list too
    code = (
        "import json, sys, pipeline.api.app; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({DATABASE!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {"psycopg", "pipeline.db", "pipeline.deliverylog"} <= set(json.loads(done.stdout))
