"""The dashboard in real headless Chromium (Debian's package, driven by Playwright): sign in, read the table and
the chart, set a member cap as an owner and watch it refuse a hold, and find that a member cannot act as an owner.
Screenshots of the Usage page at desktop and phone width are written to docs/screenshots/."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from seatmeter.entrypoints.api.app import create_app
from tests.conftest import NOW, Api, add_member, create_org

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HAIKU = "claude-haiku-4-5"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium",
    ),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """The browser tests run on SQLite only: what they show is the page, not the database."""
    path = tmp_path / "seatmeter.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        if time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


def seed(api: Api) -> dict[str, Any]:
    """A self-serve organization with credits, a few members and two weeks of usage on two models."""
    org = create_org(api)
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "400.00", "idempotency_key": "p1"},
        key=org.owner_key,
        expect=201,
    )
    api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "500.00"}, key=org.owner_key, expect=200)
    api.put(
        f"/v1/organizations/{org.id}/notification-settings",
        {"thresholds_percent": [10, 50, 75, 90, 100], "low_balance": "50.00"},
        key=org.owner_key,
        expect=200,
    )
    people = [add_member(api, org, f"{name}@acme.test") for name in ("alice", "bob", "carol", "dan")]
    api.put(
        f"/v1/organizations/{org.id}/caps/members/{people[2]['id']}", {"limit": "30.00"}, key=org.owner_key, expect=200
    )
    events = []
    for day in range(14):
        at = (NOW - timedelta(days=day, hours=2)).isoformat().replace("+00:00", "Z")
        for rank, person in enumerate(people):
            events.append(
                {
                    "idempotency_key": f"d{day}-{rank}",
                    "member_id": person["id"],
                    "model": HAIKU if rank % 2 else "claude-sonnet-4-5",
                    "surface": "web",
                    "occurred_at": at,
                    "input_tokens": (rank + 1) * 150_000 + day * 20_000,
                    "output_tokens": 2_000 * (4 - rank),
                }
            )
    api.post(f"/v1/organizations/{org.id}/usage", {"events": events}, key=org.service_key, expect=200)
    return {"org": org, "alice": people[0], "bob": people[1]}


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/app")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/app/usage")


def test_an_owner_signs_in_sees_the_table_and_chart_and_a_member_cap_set_in_the_page_refuses_a_hold(
    api: Api, server: str, browser: Any
) -> None:
    data = seed(api)
    org, alice = data["org"], data["alice"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, server, org.owner_key)
    table = page.get_by_test_id("members-table")
    assert table.locator("tbody tr").count() == 5
    assert table.get_by_text("alice@acme.test", exact=True).is_visible()
    chart = page.locator("svg.chart")
    assert chart.is_visible() and chart.locator("rect").count() >= 14
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "usage-desktop.png"), full_page=True)

    page.get_by_label("Cap for alice@acme.test (USD)").fill("1.00")
    page.locator(f"tr[data-member='{alice['id']}']").get_by_role("button", name="Save").click()
    page.wait_for_url("**/app/usage?msg=*")
    assert page.get_by_role("status").filter(has_text="cap is now 1.00 USD").is_visible()
    row = page.locator(f"tr[data-member='{alice['id']}']")
    assert "reached" in row.inner_text().lower()

    body = {
        "idempotency_key": "browser-1",
        "member_id": alice["id"],
        "model": HAIKU,
        "surface": "api",
        "estimate": {"amount": "0.50"},
    }
    refused = api.post(f"/v1/organizations/{org.id}/holds", body, key=org.service_key, expect=429)
    assert refused["error"]["code"] == "member_cap_reached"

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=1)
    small = phone.new_page()
    sign_in(small, server, org.owner_key)
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    small.screenshot(path=str(SCREENSHOTS / "usage-phone.png"), full_page=True)
    context.close()
    phone.close()


def test_a_member_sees_only_their_own_row_and_cannot_act_as_an_owner(api: Api, server: str, browser: Any) -> None:
    data = seed(api)
    org, bob = data["org"], data["bob"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    # By keyboard alone: the key field has focus when the sign-in page opens, and Enter submits.
    page.goto(f"{server}/app")
    page.keyboard.type(bob["api_key"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/app/usage")
    rows = page.get_by_test_id("members-table").locator("tbody tr")
    assert rows.count() == 1 and "bob@acme.test" in rows.inner_text()
    assert page.get_by_role("button", name="Buy credits").count() == 0
    assert page.get_by_role("button", name="Set cap").count() == 0
    # Forms the page does not offer are refused by the server too, even with the member's own valid token.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    page.evaluate(
        """async (token) => {
            const form = document.createElement('form');
            form.method = 'post'; form.action = '/app/caps/organization';
            for (const [k, v] of [['csrf', token], ['limit', '1.00'], ['action', 'set']]) {
                const input = document.createElement('input'); input.type = 'hidden'; input.name = k; input.value = v;
                form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }""",
        token,
    )
    page.wait_for_url("**/app/usage?err=*")
    assert page.get_by_role("alert").filter(has_text="only an owner").is_visible()
    caps = api.get(f"/v1/organizations/{org.id}/caps", key=org.owner_key, expect=200)
    assert caps["organization"]["limit"] == "500.00"
    context.close()
