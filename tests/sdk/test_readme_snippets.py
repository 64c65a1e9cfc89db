"""The partner section of the README: each SDK installed by its package name, and its verify
snippet run as pasted on a webhook signed by the pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from velourcity_webhooks.testing import make_signed_request, new_secret

ROOT = Path(__file__).resolve().parents[2]


def partner_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("### For partner developers\n", 1)[1].split("\n## ", 1)[0]


def block(language: str, index: int = 0) -> str:
    return partner_section().split(f"```{language}\n")[index + 1].split("```", 1)[0]


def test_each_sdk_is_installed_by_its_package_name() -> None:
    section = partner_section()
    assert "pip install velourcity-webhooks-sdk\n" in section
    assert "npm install @velourcity/webhooks\n" in section


def test_the_python_snippet_verifies_in_three_lines() -> None:
    code = block("python")
    assert len([line for line in code.splitlines() if line.strip()]) == 2  # + pip install
    secret = new_secret()
    signed = make_signed_request("order.created", secret)

    class Request:
        headers = signed.headers

    scope = {"request": Request, "raw_body": signed.body}
    exec(code.replace('"whsec_..."', repr(secret)), scope)
    assert scope["event"] == signed.event


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")
def test_the_node_snippet_verifies_in_three_lines() -> None:
    code = block("js")
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) == 2  # + npm install
    secret = new_secret()
    signed = make_signed_request("order.created", secret)
    request = {"headers": signed.headers, "body_hex": signed.body.hex()}
    setup = (
        f"const given = {json.dumps(request)};\n"
        "const req = { headers: given.headers };\n"
        "const rawBody = Buffer.from(given.body_hex, 'hex');\n"
    )
    script = (
        lines[0] + "\n" + setup + lines[1].replace("'whsec_...'", json.dumps(secret)) + "\n"
        "console.log(JSON.stringify(event));\n"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=ROOT / "sdk" / "node",  # resolves @velourcity/webhooks to this package
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == signed.event
