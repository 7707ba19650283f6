"""The dashboard over HTTP without a browser: sessions, what owners and members see, and the owner forms."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Api, Org, add_member, create_org

HAIKU = "claude-haiku-4-5"


def sign_in(client: TestClient, key: str) -> Any:
    return client.post("/app/login", data={"api_key": key}, follow_redirects=False)


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has no owner form"
    return match.group(1)


def spend(api: Api, org: Org, member_id: str, key: str, dollars: int) -> None:
    event = {
        "idempotency_key": key,
        "member_id": member_id,
        "model": HAIKU,
        "surface": "api",
        "occurred_at": "2026-11-14T09:00:00Z",
        "input_tokens": dollars * 1_000_000,
        "output_tokens": 0,
    }
    api.post(f"/v1/organizations/{org.id}/usage", {"events": [event]}, key=org.service_key, expect=200)


def test_signing_in_sets_an_httponly_samesite_cookie_and_a_bad_key_is_refused(api: Api) -> None:
    org = create_org(api)
    client = api.client
    assert client.get("/app/usage", follow_redirects=False).headers["location"] == "/app/login"
    bad = sign_in(client, "sm_not_a_key")
    assert bad.status_code == 401 and "not valid" in bad.text
    good = sign_in(client, org.owner_key)
    assert good.status_code == 303 and good.headers["location"] == "/app/usage"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and org.owner_key not in cookie
    assert client.get("/app/usage", follow_redirects=False).status_code == 200
    tampered = good.cookies["seatmeter_session"][:-2] + "xx"
    client.cookies.clear()
    response = client.get("/app/usage", headers={"cookie": f"seatmeter_session={tampered}"}, follow_redirects=False)
    assert response.status_code == 303  # a tampered cookie is no session


def test_the_owner_sees_every_member_the_chart_and_can_set_a_member_cap(api: Api) -> None:
    org = create_org(api)
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "50.00", "idempotency_key": "p"},
        key=org.owner_key,
        expect=201,
    )
    alice = add_member(api, org, "alice@acme.test")
    spend(api, org, alice["id"], "a1", 3)
    client = api.client
    sign_in(client, org.owner_key)
    page = client.get("/app/usage").text
    assert "alice@acme.test" in page and "owner@acme.test" in page
    assert "<svg" in page and "$47.00" in page  # 50.00 bought, 3.00 spent
    response = client.post(
        f"/app/caps/members/{alice['id']}",
        data={"csrf": csrf(page), "limit": "4.00", "action": "set"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and "msg=" in response.headers["location"]
    caps = api.get(f"/v1/organizations/{org.id}/caps", key=org.owner_key, expect=200)
    assert [c["limit"] for c in caps["members"] if c["member_id"] == alice["id"]] == ["4.00"]
    forged = client.post("/app/caps/organization", data={"csrf": "forged", "limit": "1.00"}, follow_redirects=False)
    assert forged.status_code == 403


def test_a_member_sees_only_their_own_row_and_no_owner_form(api: Api) -> None:
    org = create_org(api)
    alice = add_member(api, org, "alice@acme.test")
    bob = add_member(api, org, "bob@acme.test")
    spend(api, org, bob["id"], "b1", 2)
    client = api.client
    sign_in(client, alice["api_key"])
    page = client.get("/app/usage").text
    assert "alice@acme.test" in page and "bob@acme.test" not in page
    assert 'action="/app/caps' not in page and 'action="/app/credits"' not in page


def test_search_sort_and_pagination_run_in_the_database(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    for i in range(60):
        add_member(api, org, f"user{i:02d}@acme.test", seat=None)
    client = api.client
    sign_in(client, org.owner_key)
    first = client.get("/app/usage?sort=email&dir=asc&size=25").text
    assert "61 members" in first and "page 1 of 3" in first and "user00@acme.test" in first
    assert "user30@acme.test" not in first
    third = client.get("/app/usage?sort=email&dir=asc&size=25&page=3").text
    assert "user59@acme.test" in third and "user00@acme.test" not in third
    found = client.get("/app/usage?q=USER4").text
    assert "10 members" in found


def test_an_owner_downloads_an_invoice_as_csv_and_as_a_printable_page(api: Api) -> None:
    org = create_org(api)
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "25.00", "idempotency_key": "p"},
        key=org.owner_key,
        expect=201,
    )
    client = api.client
    sign_in(client, org.owner_key)
    page = client.get("/app/usage").text
    csv_link = re.search(r'href="(/app/invoices/[^"]+\.csv)"', page)
    html_link = re.search(r'href="(/app/invoices/[^"]+\.html)"', page)
    assert csv_link and html_link
    download = client.get(csv_link.group(1))
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "25.00" in download.text
    assert "25.00" in client.get(html_link.group(1)).text


def test_an_owner_of_a_seat_plan_enables_extra_usage_from_the_page(api: Api) -> None:
    org = create_org(
        api, channel="sales_assisted", seats=0, plan="seat_based", seat_prices={"standard": "25.00", "premium": "60.00"}
    )
    client = api.client
    sign_in(client, org.owner_key)
    page = client.get("/app/usage").text
    assert 'id="extra-usage-on" name="enabled" >' in page  # shown, and off
    client.post("/app/extra-usage", data={"csrf": csrf(page), "enabled": "on"})
    assert 'id="extra-usage-on" name="enabled" checked' in client.get("/app/usage").text
