"""The developer dashboard end to end in a real browser: Debian's chromium driven by Playwright,
against the real API (in-process uvicorn), a real broker, a real `velourcity worker` and a real
HTTP receiver. Create an endpoint, see a failed delivery appear, click Retry, see it succeed."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from api_fakes import InMemoryControlPlane, RecordingSender, in_memory_backends
from fastapi import FastAPI

from pipeline.api import create_api
from pipeline.events import EVENT_TYPES
from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.settings import Settings
from pipeline.topics import create_topics

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_TOKEN = "admin-secret"
pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)"
        if os.environ.get("VELOURCITY_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    # One retry after 1 s, then the dead-letter topic: a failing delivery fails fast.
    settings = settings_factory(admin_token=ADMIN_TOKEN, retry_schedule="1")
    create_topics(settings)
    return settings


def _console_error(message: ConsoleMessage) -> list[str]:
    """A script error logged to the console; not the log line of an answered 4xx (the tests
    provoke those on purpose and the page shows them)."""
    if message.type != "error" or message.text.startswith("Failed to load resource"):
        return []
    return [message.text]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread until the block ends; ready (its caches loaded)."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/endpoints", timeout=2).status_code == 401:
                    break  # past the 503 of "still loading": the backends are up
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not start within 60 s"
            assert thread.is_alive(), "the API server stopped"
            time.sleep(0.2)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    """The real API (create_api on the test's topics)."""
    with _serve(create_api(settings)) as url:
        yield url


@pytest.mark.kafka
@pytest.mark.timeout(240)
def test_a_failed_delivery_is_retried_from_the_dashboard(
    chromium: Path, settings: Settings, api_url: str, receiver_factory, worker_factory
) -> None:
    from playwright.sync_api import expect, sync_playwright

    healthy = threading.Event()
    receiver = receiver_factory(lambda _r, _n: (200, {}) if healthy.is_set() else (500, {}))
    created = httpx.post(
        f"{api_url}/v1/accounts",
        json={"name": "Trattoria Roma"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    account_id, api_key = created.json()["id"], created.json()["api_key"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page_errors: list[str] = []
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("console", lambda msg: page_errors.extend(_console_error(msg)))
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            page.goto(api_url + "/")

            # Sign in: a wrong key is refused next to the form, the right one gets in.
            expect(page.get_by_test_id("api-key-input")).to_be_visible(timeout=10_000)
            page.get_by_test_id("api-key-input").fill("vk_wrong")
            page.get_by_test_id("sign-in").click()
            expect(page.get_by_test_id("sign-in-error")).to_contain_text("wrong")
            page.get_by_test_id("api-key-input").fill(api_key)
            page.get_by_test_id("sign-in").click()
            expect(page.get_by_test_id("no-endpoints")).to_be_visible()
            assert api_key not in page.url
            assert page.evaluate("sessionStorage.getItem('velourcity.apiKey')") == api_key

            # A refused URL is explained next to the create form, naming the field.
            form = page.get_by_test_id("create-endpoint-form")
            page.get_by_test_id("endpoint-url").fill("https://169.254.169.254/latest")
            page.get_by_test_id("create-endpoint").click()
            error = page.get_by_test_id("create-endpoint-error")
            expect(error).to_be_visible()
            expect(error).to_have_attribute("data-error-field", "url")
            expect(form.locator('[name="url"]')).to_have_attribute("aria-invalid", "true")

            # Create the endpoint: its secret is shown once.
            page.get_by_test_id("endpoint-url").fill(receiver.url)
            page.get_by_test_id("event-type-order.created").check()
            page.get_by_test_id("endpoint-description").fill("<b>kitchen</b> printer")
            page.get_by_test_id("create-endpoint").click()
            expect(page.get_by_test_id("new-secret")).to_have_value(re.compile(r"^whsec_"))
            expect(page.get_by_test_id("endpoint-item")).to_have_count(1)
            # Data is text, never markup.
            expect(page.get_by_test_id("detail-description")).to_have_text("<b>kitchen</b> printer")
            expect(page.get_by_test_id("detail-url")).to_have_text(receiver.url)
            secret = page.get_by_test_id("new-secret").input_value()
            page.get_by_test_id("reveal-secret").click()
            expect(page.get_by_test_id("secret-value")).to_have_value(secret)

            # The worker starts once the endpoint exists (it loads every endpoint first), then
            # the event: the receiver answers 500, so the delivery ends failed (dead-lettered).
            worker_factory(settings)
            with Publisher(settings) as publisher:
                publisher.send(sample_event("order.created", account_id))
                publisher.flush()

            row = page.get_by_test_id("delivery-row")
            expect(row).to_have_count(1, timeout=90_000)
            expect(row).to_have_attribute("data-status", "failed", timeout=60_000)
            expect(row.get_by_test_id("delivery-event-type")).to_have_text("order.created")
            expect(row.get_by_test_id("delivery-attempts")).to_have_text("2")
            expect(row.get_by_test_id("delivery-last-status")).to_have_text("500")
            assert len(receiver.requests) == 2

            # Expanding the row shows each attempt with its status, latency and response.
            row.click()
            attempts = page.get_by_test_id("attempt-row")
            expect(attempts).to_have_count(2)
            expect(attempts.first.get_by_test_id("attempt-status")).to_have_text("500")
            expect(attempts.first.get_by_test_id("attempt-latency")).to_contain_text("ms")
            expect(attempts.last).to_have_attribute("data-outcome", "dead_lettered")

            # The receiver recovers; Retry sends the same webhook again, and it is delivered.
            healthy.set()
            row.get_by_test_id("retry-delivery").click()
            expect(row.get_by_test_id("retry-result")).to_have_text("queued")
            expect(row).to_have_attribute("data-status", "delivered", timeout=60_000)
            expect(row.get_by_test_id("delivery-last-status")).to_have_text("200")
            expect(attempts).to_have_count(3)
            webhook_ids = {
                {k.lower(): v for k, v in r.headers.items()}["webhook-id"]
                for r in receiver.wait_for(3)
            }
            assert len(webhook_ids) == 1  # one webhook, three tries: receivers dedupe on it

            # The chart shows the minute's outcomes.
            page.get_by_test_id("chart-hours").select_option("1")
            expect(
                page.locator('[data-testid="chart-bar"][data-outcome="delivered"]')
            ).not_to_have_count(0)
            assert page_errors == []
        except Exception:
            print("page errors:", page_errors)
            raise
        finally:
            browser.close()


@pytest.mark.timeout(120)
def test_endpoint_tools_on_in_memory_backends(chromium: Path) -> None:
    """Edit, disable and enable, reveal and rotate the secret, send a test event, recover: each
    tool reaches its route, and a refused input is explained beside its form (no broker)."""
    from playwright.sync_api import expect, sync_playwright

    settings = Settings(admin_token=ADMIN_TOKEN, allowed_networks="127.0.0.0/8")
    control = InMemoryControlPlane()
    app = create_api(settings, backends=in_memory_backends(control))
    rotation = any(getattr(r, "path", "").endswith("/rotate-secret") for r in app.routes)
    with _serve(app) as url, sync_playwright() as playwright:
        created = httpx.post(
            f"{url}/v1/accounts",
            json={"name": "Lyon Bistro"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        ).json()
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page_errors: list[str] = []
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("console", lambda msg: page_errors.extend(_console_error(msg)))
            expect.set_options(timeout=15_000)
            page.goto(url + "/")
            page.get_by_test_id("api-key-input").fill(created["api_key"])
            page.get_by_test_id("sign-in").click()
            page.get_by_test_id("endpoint-url").fill("http://127.0.0.1:9/first")
            page.get_by_test_id("create-endpoint").click()
            expect(page.get_by_test_id("detail-url")).to_have_text("http://127.0.0.1:9/first")
            first_secret = page.get_by_test_id("new-secret").input_value()

            # Edit: a refused value is shown beside the edit form; a good one is saved.
            page.get_by_test_id("edit-endpoint").click()
            page.get_by_test_id("edit-url").fill("ftp://127.0.0.1/nope")
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("edit-endpoint-error")).to_have_attribute(
                "data-error-field", "url"
            )
            page.get_by_test_id("edit-url").fill("http://127.0.0.1:9/second")
            page.get_by_test_id("edit-event-type-order.delivered").check()
            page.get_by_test_id("edit-description").fill("front desk")
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("edit-endpoint-form")).to_be_hidden()
            expect(page.get_by_test_id("detail-url")).to_have_text("http://127.0.0.1:9/second")
            expect(page.get_by_test_id("detail-types")).to_have_text("order.delivered")
            expect(page.get_by_test_id("endpoint-item")).to_contain_text("front desk")

            # Content filter: a bad one is explained beside the form, naming its column; a good
            # one is saved and shown; emptied, it is removed.
            page.get_by_test_id("edit-endpoint").click()
            page.get_by_test_id("edit-filter").fill("data.total >> 5")
            page.get_by_test_id("save-endpoint").click()
            error = page.get_by_test_id("edit-endpoint-error")
            expect(error).to_have_attribute("data-error-field", "filter")
            expect(error).to_contain_text("column 13")
            page.get_by_test_id("edit-filter").fill('data.restaurant_id in ["rst_111"]')
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("edit-endpoint-form")).to_be_hidden()
            expect(page.get_by_test_id("detail-filter")).to_have_text(
                'filter: data.restaurant_id in ["rst_111"]'
            )
            stored = control.for_account(created["id"])[0]
            assert stored.filter == 'data.restaurant_id in ["rst_111"]'
            page.get_by_test_id("edit-endpoint").click()
            expect(page.get_by_test_id("edit-filter")).to_have_value(stored.filter)
            page.get_by_test_id("edit-filter").fill("")
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("detail-filter")).to_be_hidden()
            assert control.for_account(created["id"])[0].filter is None

            # Custom headers: a reserved one is refused beside the form; set, they are shown
            # masked (never their values); then removed.
            page.get_by_test_id("edit-endpoint").click()
            page.get_by_test_id("edit-headers").fill("Host: evil.example")
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("edit-endpoint-error")).to_have_attribute(
                "data-error-field", "headers"
            )
            token = "tok_live_0123456789abcdef"
            page.get_by_test_id("edit-headers").fill(f"X-Partner-Token: {token}\nX-Region: eu")
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("edit-endpoint-form")).to_be_hidden()
            expect(page.get_by_test_id("detail-headers")).to_have_text(
                "headers: X-Partner-Token: ****cdef, X-Region: ****"
            )
            assert token not in page.content()
            stored = control.for_account(created["id"])[0]
            assert stored.headers == (("X-Partner-Token", token), ("X-Region", "eu"))
            page.get_by_test_id("edit-endpoint").click()
            page.get_by_test_id("edit-description").fill("front desk")  # headers unchanged
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("edit-endpoint-form")).to_be_hidden()
            assert control.for_account(created["id"])[0].headers == stored.headers
            page.get_by_test_id("edit-endpoint").click()
            page.get_by_test_id("edit-clear-headers").check()
            page.get_by_test_id("save-endpoint").click()
            expect(page.get_by_test_id("detail-headers")).to_be_hidden()
            assert control.for_account(created["id"])[0].headers == ()

            # Disable, enable.
            page.get_by_test_id("toggle-enabled").click()
            expect(page.get_by_test_id("detail-state")).to_have_attribute("data-enabled", "false")
            page.get_by_test_id("toggle-enabled").click()
            expect(page.get_by_test_id("detail-state")).to_have_attribute("data-enabled", "true")

            # Reveal, then rotate (when the route is there): the new secret replaces the old.
            page.get_by_test_id("reveal-secret").click()
            expect(page.get_by_test_id("secret-value")).to_have_value(first_secret)
            if rotation:
                page.get_by_test_id("rotate-grace").fill("60")
                page.get_by_test_id("rotate-secret").click()
                expect(page.get_by_test_id("rotate-result")).to_contain_text("keeps signing")
                expect(page.get_by_test_id("secret-value")).not_to_have_value(first_secret)

            # The event catalog: each type's fields and example, from GET /v1/event-types; the
            # test event's types are its domain types.
            catalog = page.get_by_test_id("catalog")
            expect(catalog.get_by_test_id("catalog-description")).to_contain_text("order.created")
            expect(catalog.get_by_test_id("catalog-version")).to_have_text("version 2 (earlier: 1)")
            expect(catalog.get_by_test_id("catalog-fields")).to_contain_text("special_instructions")
            expect(catalog.get_by_test_id("catalog-example")).to_contain_text('"total":')
            page.get_by_test_id("catalog-type").select_option("payment.completed")
            expect(catalog.get_by_test_id("catalog-fields")).to_contain_text("amount")
            page.get_by_test_id("catalog-type").select_option("endpoint.disabled")
            expect(catalog.get_by_test_id("catalog-example")).to_contain_text("failing_since")
            options = page.get_by_test_id("test-event-type").locator("option").all_inner_texts()
            assert options == list(EVENT_TYPES)  # endpoint.disabled is not a test event

            # Send a test event: it goes out to this endpoint.
            page.get_by_test_id("test-event-type").select_option("order.cancelled")
            page.get_by_test_id("send-test").click()
            expect(page.get_by_test_id("test-result")).to_contain_text("evt_")
            sender = app.state.backends.delivery_sender
            assert isinstance(sender, RecordingSender)
            assert [d.event_type for d in sender.sent] == ["order.cancelled"]

            # Recover: a bad time is explained beside the form; a good one queues what failed.
            page.get_by_test_id("recover-since").fill("last tuesday")
            page.get_by_test_id("recover").click()
            expect(page.get_by_test_id("recover-error")).to_have_attribute(
                "data-error-field", "since"
            )
            page.get_by_test_id("recover-since").fill("-2h")
            page.get_by_test_id("recover").click()
            expect(page.get_by_test_id("recover-result")).to_contain_text("0 failed deliveries")
            expect(page.get_by_test_id("recover-error")).to_be_hidden()

            # Signing out forgets the key.
            page.get_by_test_id("sign-out").click()
            expect(page.get_by_test_id("sign-in-form")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('velourcity.apiKey')") is None
            assert page_errors == []
        except Exception:
            print("page errors:", page_errors)
            raise
        finally:
            browser.close()


@pytest.mark.timeout(120)
def test_a_portal_link_signs_a_teammate_in_for_one_account(chromium: Path) -> None:
    """A read-only link opens the dashboard signed in (token out of the address bar, write
    controls gone); a full one shows them; a revoked one signs the tab out saying why."""
    from playwright.sync_api import expect, sync_playwright

    settings = Settings(admin_token=ADMIN_TOKEN, allowed_networks="127.0.0.0/8")
    app = create_api(settings, backends=in_memory_backends())
    with _serve(app) as url, sync_playwright() as playwright:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = httpx.post(
            f"{url}/v1/accounts", json={"name": "Lyon Bistro"}, headers=admin, timeout=30
        ).json()
        key = {"Authorization": f"Bearer {created['api_key']}"}
        endpoint = httpx.post(
            f"{url}/v1/endpoints", json={"url": "http://127.0.0.1:9/hooks"}, headers=key
        ).json()
        read = httpx.post(f"{url}/v1/portal-links", json={"label": "ana"}, headers=key).json()
        full = httpx.post(
            f"{url}/v1/accounts/{created['id']}/portal-link", json={"scope": "full"}, headers=admin
        ).json()
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page_errors: list[str] = []
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("console", lambda msg: page_errors.extend(_console_error(msg)))
            expect.set_options(timeout=15_000)
            page.goto(read["url"])
            expect(page.get_by_test_id("portal-banner")).to_contain_text("Lyon Bistro")
            expect(page.get_by_test_id("portal-banner")).to_contain_text("read-only")
            assert "#portal" not in page.url and read["token"] not in page.url
            expect(page.get_by_test_id("endpoint-item")).to_have_count(1)
            page.get_by_test_id("endpoint-item").click()
            expect(page.get_by_test_id("detail-url")).to_have_text(endpoint["url"])
            expect(page.get_by_test_id("create-endpoint-form")).to_be_hidden()
            expect(page.get_by_test_id("edit-endpoint")).to_be_hidden()
            expect(page.get_by_test_id("reveal-secret")).to_be_hidden()
            expect(page.get_by_test_id("send-test")).to_be_hidden()

            page.goto(full["url"])  # another link in the same tab replaces the first
            expect(page.get_by_test_id("portal-banner")).to_contain_text("full access")
            page.get_by_test_id("endpoint-item").click()
            expect(page.get_by_test_id("edit-endpoint")).to_be_visible()
            expect(page.get_by_test_id("create-endpoint-form")).to_be_visible()

            revoked = httpx.delete(f"{url}/v1/portal-links/{full['id']}", headers=key)
            assert revoked.status_code == 200
            expect(page.get_by_test_id("sign-in-error")).to_contain_text(
                "portal link has expired or was revoked"
            )
            expect(page.get_by_test_id("sign-in-form")).to_be_visible()
            assert page_errors == []
        finally:
            browser.close()
