"""The Node SDK (sdk/node, npm package @velourcity/webhooks): its ``node --test`` suite on
requests signed by the pipeline's own code and by the Standard Webhooks library
(examples/make_vectors.py), its package contents, and its hand-written TypeScript types
(compiled with tsc, fetched from the npm registry into a temp folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "node"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm not on PATH: the Node SDK needs Node 18+",
)


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vectors") / "vectors.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_vectors.py"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.timeout(180)
def test_node_sdk_suite(vectors_file: Path) -> None:
    done = subprocess.run(
        ["node", "--test"],
        cwd=SDK,
        env=os.environ | {"VELOURCITY_VECTORS": str(vectors_file)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"node --test failed:\n{done.stdout}\n{done.stderr}"
    assert "# fail 0" in done.stdout, done.stdout
    assert "# pass 0" not in done.stdout


def test_the_package_ships_both_module_formats_and_types() -> None:
    done = subprocess.run(
        ["npm", "pack", "--dry-run", "--json"],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (pack,) = json.loads(done.stdout)
    assert pack["name"] == "@velourcity/webhooks"
    files = sorted(f["path"] for f in pack["files"])
    assert files == [
        "README.md",
        "index.cjs",
        "index.d.cts",
        "index.d.mts",
        "index.mjs",
        "package.json",
    ]
    manifest = json.loads((SDK / "package.json").read_text())
    assert "dependencies" not in manifest


@pytest.mark.timeout(300)
def test_the_types_compile_for_esm_and_commonjs_users(tmp_path: Path) -> None:
    install = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(tmp_path),
         "typescript@5", "@types/node@20", "@types/express@5", "express@5"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert install.returncode == 0, f"npm install of tsc failed:\n{install.stderr}"
    package = tmp_path / "node_modules" / "@velourcity" / "webhooks"
    package.mkdir(parents=True)
    for name in ("package.json", "index.cjs", "index.mjs", "index.d.cts", "index.d.mts"):
        shutil.copy2(SDK / name, package / name)
    usage = (SDK / "test" / "types.test-d.ts").read_text()
    (tmp_path / "use.mts").write_text(usage)
    (tmp_path / "use.cts").write_text(
        usage.replace("import express from 'express';", "import express = require('express');")
    )
    (tmp_path / "wrong.mts").write_text(
        "import { verify } from '@velourcity/webhooks';\n"
        "export const n: number = verify({}, Buffer.from(''), 'whsec_a');\n"
    )
    tsc = [
        str(tmp_path / "node_modules" / ".bin" / "tsc"),
        *("--strict", "--noEmit", "--module", "nodenext", "--moduleResolution", "nodenext"),
        *("--types", "node,express"),
    ]

    def compile_(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*tsc, *files], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )

    good = compile_("use.mts", "use.cts")
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = compile_("wrong.mts")  # the types are real, not `any`
    assert "'WebhookEvent' is not assignable to type 'number'" in wrong.stdout, wrong.stdout
