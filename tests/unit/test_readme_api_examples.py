"""The README's REST API curl commands work when pasted: run verbatim (only the host, the admin
token and the ``vk_...`` placeholder filled in) against a real API server on 127.0.0.1.

curl's ``-d`` alone sends ``application/x-www-form-urlencoded``, which the API refuses as
``invalid_body`` (a JSON API reading form bodies as JSON would hide real client mistakes), so
the README's commands say ``-H 'Content-Type: application/json'``; this test keeps them so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from api_fakes import in_memory_backends

from pipeline.api import create_api
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "readme-admin-token"
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not on PATH")


class PartnerResolver:
    """Registration-time DNS without the network: the README's partner.example is public."""

    def resolve_sync(self, host: str, port: int) -> list[str]:
        if host.endswith(".example"):
            return ["93.184.216.34"]
        raise OSError("name does not resolve")


def readme_curl_commands() -> list[str]:
    """The curl commands of the README's REST API section, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## REST API\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


@pytest.fixture
def api_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_api(
        Settings(admin_token=ADMIN_TOKEN),
        backends=in_memory_backends(),
        resolver=PartnerResolver(),
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="readme-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def paste(command: str, api_url: str, **placeholders: str) -> dict[str, object]:
    """Run one README command in bash as a user would, with the placeholders filled in."""
    command = command.replace("localhost:8080", api_url)
    for placeholder, value in placeholders.items():
        command = command.replace(placeholder, value)
    done = subprocess.run(
        ["bash", "-c", command],
        env=os.environ | {"VELOURCITY_ADMIN_TOKEN": ADMIN_TOKEN},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_the_readme_curl_commands_work_when_pasted(api_url: str) -> None:
    create_account, create_endpoint = readme_curl_commands()
    account = paste(create_account, api_url)
    assert str(account["id"]).startswith("acct_"), account
    api_key = str(account["api_key"])
    endpoint = paste(create_endpoint, api_url, **{"vk_...": api_key})
    assert str(endpoint["id"]).startswith("ep_"), endpoint
    assert endpoint["url"] == "https://partner.example/webhooks"
    assert str(endpoint["secret"]).startswith("whsec_")


def test_every_readme_command_with_a_body_says_it_is_json() -> None:
    for command in readme_curl_commands():
        if " -d " in command:
            assert re.search(r"-H '[Cc]ontent-[Tt]ype: application/json'", command), command


def test_without_the_header_the_api_says_what_is_wrong(api_url: str) -> None:
    answer = httpx.post(
        f"{api_url}/v1/accounts",
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": "application/x-www-form-urlencoded",  # what curl -d sends
        },
        content=b'{"name":"Trattoria Roma"}',
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_body"
    assert "Content-Type: application/json" in answer.json()["error"]["message"]
