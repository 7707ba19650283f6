"""The Usage page with 10,000 members: one page of rows comes from the database, so it stays fast.

Timings are printed, not asserted (tests check behaviour): what keeps the page fast is that it renders one page
of members, whatever the organization's size, and that is what is asserted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from seatmeter.adapters.tables import limit_accounts, members
from seatmeter.entrypoints.api.app import create_app
from tests.conftest import Api, create_org

MEMBERS = 10_000


def test_the_usage_page_of_an_organization_with_10000_members_renders_one_page_of_rows(app: Any) -> None:
    with TestClient(create_app(app)) as client:
        api = Api(client)
        org = create_org(api, channel="sales_assisted", seats=0)
        created = datetime(2026, 11, 1, tzinfo=UTC)
        with app.engine.begin() as conn:
            conn.execute(
                members.insert(),
                [
                    {
                        "organization_id": org.id,
                        "id": f"mem_{i:05d}",
                        "email": f"user{i:05d}@acme.test",
                        "name": f"User {i:05d}",
                        "role": "member",
                        "created_at": created,
                    }
                    for i in range(MEMBERS)
                ],
            )
            conn.execute(
                limit_accounts.insert(),
                [
                    {
                        "organization_id": org.id,
                        "account": f"member:mem_{i:05d}",
                        "period": "2026-11",
                        "limit_nano": None,
                        "posted_nano": (i * 7919) % 100_000 * 10_000,
                        "held_nano": 0,
                    }
                    for i in range(MEMBERS)
                ],
            )
        client.post("/app/login", data={"api_key": org.owner_key})
        timings = []
        for query in ("", "?sort=spend&dir=desc", "?q=user09&sort=name&dir=asc", "?sort=cap&page=150"):
            started = time.perf_counter()
            page = client.get(f"/app/usage{query}")
            timings.append(time.perf_counter() - started)
            assert page.status_code == 200
            shown = page.text.count("@acme.test</")
            assert 1 <= shown <= 50, (query, shown)  # one page (the default size is 50), never the 10,000
        assert "10001 members" in client.get("/app/usage").text
        assert "1000 members" in client.get("/app/usage?q=user09").text
        # The highest spend is the member whose (i * 7919) % 100000 is largest.
        top = max(range(MEMBERS), key=lambda i: (i * 7919) % 100_000)
        assert f"user{top:05d}@acme.test" in client.get("/app/usage?sort=spend&dir=desc&size=25").text
    print(f"usage page with {MEMBERS} members: " + ", ".join(f"{t * 1000:.0f} ms" for t in timings))
