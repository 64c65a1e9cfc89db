"""Scenario 6, API abuse: schemathesis and hand-made malformed, oversized and cross-account
requests against a running ``velourcity api`` while events flow through a worker. Targets: no
``5xx``, the API process never dies, and nothing of account B ever reaches account A."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from pipeline.processes import stop_process
from velourcity_chaos.report import Tally
from velourcity_chaos.scenarios import Options, publish
from velourcity_chaos.stack import Stack, TrackedPublisher, stack

ADMIN_TOKEN = "chaos-admin-token"  # noqa: S105 (a throwaway stack's own token)
_PYTHON_CLI = "from pipeline.cli import main; main()"


class _Api:
    def __init__(self, run: Stack, directory: Path) -> None:
        from velourcity_chaos.broker import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "api.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own CLI)
                [sys.executable, "-c", _PYTHON_CLI, "api", "--port", str(self.port)],
                env=run.settings.as_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=self.base, timeout=30)
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = self.client.get("/v1/endpoints", headers=_bearer("vk_none"))
                if answer.status_code != 503:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError("velourcity api did not get ready")

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One request, counted; a 5xx or a dropped connection is a failure."""
        try:
            answer = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            with self._lock:
                self.failures.append(f"{method} {path[:80]}: {type(exc).__name__}")
            return None
        with self._lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code >= 500:
                self.failures.append(f"{method} {path[:80]}: {answer.status_code}")
        return answer

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process, 15)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _account(api: _Api, run: Stack, name: str) -> dict[str, Any]:
    """An account with two endpoints (to the accounting receiver): its ids, key and secrets."""
    created = api.call("POST", "/v1/accounts", json={"name": name}, headers=_bearer(ADMIN_TOKEN))
    assert created is not None and created.status_code == 201, created and created.text
    account = created.json()
    key = _bearer(account["api_key"])
    secrets, endpoint_ids = [], []
    for n in range(2):
        url = run.receiver.url(f"/hooks/{account['id']}/{n}")
        answer = api.call("POST", "/v1/endpoints", json={"url": url}, headers=key)
        assert answer is not None and answer.status_code == 201, answer and answer.text
        endpoint_ids.append(answer.json()["id"])
        secrets.append(answer.json()["secret"])
    return {"id": account["id"], "key": key, "endpoints": endpoint_ids, "secrets": secrets}


def _malformed(api: _Api, a: dict[str, Any], b: dict[str, Any]) -> list[httpx.Response]:
    """Hand-made bad requests with A's key; B's ids where an id goes."""
    key, other = a["key"], b["endpoints"][0]
    json_type = {"Content-Type": "application/json"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/endpoints", {"content": b"{not json", "headers": json_type}),
        ("POST", "/v1/endpoints", {"content": b"\xff\xfe\x00garbage", "headers": json_type}),
        ("POST", "/v1/endpoints", {"content": b"[" * 50_000 + b"]" * 50_000}),
        ("POST", "/v1/endpoints", {"content": b"x" * (10 * 1024 * 1024), "headers": json_type}),
        ("POST", "/v1/endpoints", {"json": {"url": "http://169.254.169.254/latest"}}),
        ("POST", "/v1/endpoints", {"json": {"url": "https://" + "a" * 70_000 + ".example"}}),
        ("POST", "/v1/endpoints", {"json": {"url": 12, "event_types": "all"}}),
        ("POST", "/v1/endpoints", {"content": b'{"url": "\\ud800"}', "headers": json_type}),
        ("GET", "/v1/endpoints?limit=-1&cursor=%00%ff", {}),
        ("GET", "/v1/deliveries?since=yesterday&until=%ff&cursor=../../etc", {}),
        ("GET", "/v1/deliveries?endpoint_id=" + other, {}),
        ("GET", "/v1/deliveries?cursor=" + "A" * 10_000, {}),
        ("GET", "/v1/stats/deliveries?hours=1e309", {}),
        ("GET", "/v1/endpoints/" + other, {}),
        ("GET", f"/v1/endpoints/{other}/secret", {}),
        ("GET", f"/v1/endpoints/{other}/health", {}),
        ("PATCH", "/v1/endpoints/" + other, {"json": {"url": "https://evil.example/x"}}),
        ("POST", f"/v1/endpoints/{other}/disable", {}),
        ("POST", f"/v1/endpoints/{other}/rotate-secret", {"json": {}}),
        ("POST", f"/v1/endpoints/{other}/test", {"json": {"event_type": "order.created"}}),
        ("POST", f"/v1/endpoints/{other}/recover", {"json": {"since": "-2h"}}),
        ("DELETE", "/v1/endpoints/" + other, {}),
        ("POST", f"/v1/accounts/{b['id']}/keys", {}),
        ("GET", "/v1/endpoints/..%2F..%2Fetc%2Fpasswd", {}),
        ("GET", "/v1/deliveries/dlv_" + "z" * 5000, {}),
        ("POST", "/v1/dead-letters/redrive", {"json": {"endpoint_id": other}}),
        ("PUT", "/v1/endpoints", {"json": {}}),
        ("GET", "/v1/endpoints", {"headers": {"Authorization": "Bearer " + "v" * 60_000}}),
        ("GET", "/v1/endpoints", {"headers": {"Authorization": "Basic Zm9vOmJhcg=="}}),
        ("GET", "/v1/endpoints", {"headers": {"Authorization": "Bearer vk_é".encode()}}),
    ]
    answers = []
    for method, path, kwargs in calls:
        headers = kwargs.pop("headers", {})
        merged = headers if "Authorization" in headers else key | headers
        answer = api.call(method, path, headers=merged, **kwargs)
        if answer is not None:
            answers.append(answer)
    return answers


def _still_as_created(api: _Api, b: dict[str, Any]) -> bool:
    """B's endpoints are all there, enabled, with their first secret."""
    answer = api.call("GET", "/v1/endpoints", headers=b["key"])
    if answer is None or answer.status_code != 200:
        return False
    body = answer.json()
    items = body.get("data", body) if isinstance(body, dict) else body
    found = {e["id"]: e for e in items if isinstance(e, dict)}
    for endpoint_id, secret in zip(b["endpoints"], b["secrets"], strict=True):
        endpoint = found.get(endpoint_id)
        if endpoint is None or not endpoint.get("enabled", True):
            return False
        shown = api.call("GET", f"/v1/endpoints/{endpoint_id}/secret", headers=b["key"])
        if shown is None or secret not in shown.text:
            return False
    return True


def _har_count(har: Path) -> int:
    try:
        return len(json.loads(har.read_text(errors="replace"))["log"]["entries"])
    except (OSError, ValueError, KeyError):
        return 0


def _sent(request: httpx.Request) -> str:
    """What a request carried (an answer may echo it: that is no leak)."""
    return str(request.url) + request.content.decode(errors="replace") + str(request.headers)


def _har_leaks(har: Path, secrets: list[str]) -> list[str]:
    """B's secrets in a schemathesis answer that A's requests did not carry."""
    if not har.exists():
        return []
    leaks = set()
    for entry in json.loads(har.read_text(errors="replace"))["log"]["entries"]:
        answer = json.dumps(entry.get("response", {}))
        sent = json.dumps(entry.get("request", {}))
        leaks |= {s[:12] + "…" for s in secrets if s in answer and s not in sent}
    return sorted(leaks)


def _schemathesis(api: _Api, a: dict[str, Any], options: Options, directory: Path) -> str:
    """schemathesis against the live API, A's key (and the admin token for /v1/accounts); the
    HAR files of every exchange go to ``directory``; returns its summary lines."""
    summary = []
    runs = [
        ("key", a["key"]["Authorization"], ["--exclude-path-regex", "^/v1/accounts"]),
        ("admin", f"Bearer {ADMIN_TOKEN}", ["--include-path-regex", "^/v1/accounts"]),
    ]
    for name, token, selection in runs:
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{api.base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: {token}",
            "--max-examples",
            "5" if options.ci else "40",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--report",
            "har",
            "--report-har-path",
            str(directory / f"schemathesis-{name}.har"),
            "--no-color",
            *selection,
        ]
        done = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=600, check=False, cwd=directory
        )
        (directory / f"schemathesis-{name}.log").write_text(done.stdout + done.stderr)
        tail = [line for line in done.stdout.splitlines() if line.strip()][-3:]
        summary.append(f"{name}: exit {done.returncode}; " + " / ".join(tail))
        if done.returncode != 0:
            api.failures.append(f"schemathesis ({name}) exit {done.returncode}: see its log")
    return "; ".join(summary)


def _load(run: Stack, stop: threading.Event, api: _Api, key: dict[str, str]) -> None:
    """Traffic while the abuse runs: events through the worker and reads of the API."""
    publisher = TrackedPublisher(run.settings)

    def reads() -> None:
        while not stop.is_set():
            api.call("GET", "/v1/deliveries", headers=key)
            api.call("GET", "/v1/endpoints", headers=key)
            time.sleep(0.05)

    reader = threading.Thread(target=reads, daemon=True)
    reader.start()
    while not stop.is_set():
        publish(run, publisher, 100, 50)
    reader.join(30)


def api_abuse(options: Options) -> Tally:
    tally = Tally(scenario="6. API abuse")
    started = time.monotonic()
    with stack(
        options.bootstrap, options.directory, name="api-abuse", admin_token=ADMIN_TOKEN
    ) as run:
        run.start_worker()
        api = _Api(run, run.directory)
        stop = threading.Event()
        load: threading.Thread | None = None
        try:
            api.wait_ready()
            a, b = _account(api, run, "Account A"), _account(api, run, "Account B")
            run.accounts = [a["id"], b["id"]]  # the load's events go to both
            load = threading.Thread(target=_load, args=(run, stop, api, a["key"]), daemon=True)
            load.start()
            answers = _malformed(api, a, b)
            tally.notes["schemathesis"] = _schemathesis(api, a, options, run.directory)
            answers += [
                answer
                for path in ("/v1/endpoints", "/v1/deliveries", "/v1/dead-letters")
                if (answer := api.call("GET", path, headers=a["key"])) is not None
            ]
            secrets_of_b = [b["id"], *b["endpoints"], *b["secrets"], b["key"]["Authorization"]]
            leaks = sorted(
                {
                    secret[:12] + "…"
                    for secret in secrets_of_b
                    for answer in answers
                    if secret in answer.text and secret not in _sent(answer.request)
                }
            )
            leaks += _har_leaks(run.directory / "schemathesis-key.har", secrets_of_b)
            untouched = _still_as_created(api, b)
            fuzzed = sum(_har_count(p) for p in run.directory.glob("schemathesis-*.har"))
            alive = api.process.poll() is None
        finally:
            stop.set()
            if load is not None:
                load.join(60)
            api.stop()
        tally.published = sum(api.statuses.values()) + fuzzed
        tally.notes |= {
            "requests by schemathesis": fuzzed,
            "B's endpoints untouched": untouched,
            "statuses": dict(sorted(api.statuses.items())),
            "API alive at the end": alive,
            "B's data seen by A": leaks or "none",
        }
        if api.failures:
            tally.problems.append(f"{len(api.failures)} failures: {api.failures[:5]}")
        if leaks:
            tally.problems.append(f"account B's data reached account A: {leaks}")
        if not untouched:
            tally.problems.append("account B's endpoints were changed by account A's requests")
        if not alive:
            tally.problems.append("the API process died")
        if "Traceback" in api.log_path.read_text(errors="replace"):
            tally.problems.append("Traceback in api.log")
        if broken := run.tracebacks():
            tally.problems.append(f"Traceback in {', '.join(broken)}")
    tally.seconds = time.monotonic() - started
    return tally
