"""The billing cycle over HTTP, on SQLite and PostgreSQL: seats, entitlements, period close, invoices, renewals."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from seatmeter.adapters.clock import FixedClock
from seatmeter.bootstrap import App
from seatmeter.services.worker import run_worker_once
from tests.conftest import Api, Org, add_member, create_org

Q1_2024 = datetime(2024, 1, 1, 15, 0, tzinfo=UTC)


def _org(api: Api, clock: FixedClock, channel: str = "sales_assisted", **extra: Any) -> Org:
    clock.set(Q1_2024)
    extra.setdefault("term_start", "2024-01-01")
    return create_org(api, channel=channel, seats=0, **extra)


def _usage(api: Api, org: Org, member_id: str, key: str, occurred_at: str, **tokens: int) -> None:
    event = {
        "idempotency_key": key,
        "member_id": member_id,
        "model": "claude-sonnet-4-5",
        "surface": "web",
        "occurred_at": occurred_at,
        "input_tokens": 0,
        "output_tokens": 0,
        **tokens,
    }
    result = api.post(f"/v1/organizations/{org.id}/usage", {"events": [event]}, key=org.service_key, expect=200)
    assert result["accepted"] == 1


def _seat(api: Api, org: Org, member_id: str, seat_type: str = "enterprise", expect: int = 200) -> Any:
    return api.put(
        f"/v1/organizations/{org.id}/members/{member_id}/seat",
        {"seat_type": seat_type},
        key=org.owner_key,
        expect=expect,
    )


def _hold(
    api: Api, org: Org, member_id: str, surface: str = "web", amount: str = "0.10", expect: int = 201, key: str = "h1"
) -> Any:
    return api.post(
        f"/v1/organizations/{org.id}/holds",
        {
            "idempotency_key": key,
            "member_id": member_id,
            "model": "claude-sonnet-4-5",
            "surface": surface,
            "estimate": {"amount": amount},
        },
        key=org.service_key,
        expect=expect,
    )


def test_ten_seats_added_on_1_april_2024_are_invoiced_at_exactly_901_64(api: Api, clock: FixedClock):
    org = _org(api, clock)
    first = api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "enterprise", "quantity": 50}, expect=201)
    assert first["invoice"]["total"] == "6000.00"
    clock.set(datetime(2024, 4, 1, 15, 0, tzinfo=UTC))
    added = api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "enterprise", "quantity": 10}, expect=201)
    invoice = added["invoice"]
    assert invoice["kind"] == "seats"
    assert invoice["total"] == "901.64"
    assert [line["amount"] for line in invoice["lines"]] == ["901.64"]
    assert "275/366 days" in invoice["lines"][0]["description"]
    assert invoice["number"] == first["invoice"]["number"] + 1
    assert added["seats"]["data"][0] == {
        "seat_type": "enterprise",
        "purchased": 60,
        "assigned": 0,
        "available": 60,
        "price_per_month": "10.00",
    }
    again = api.get(f"/v1/organizations/{org.id}/invoices/{invoice['id']}", key=org.owner_key, expect=200)
    assert again["total"] == "901.64"


def test_an_owner_cannot_backdate_seats_but_the_operator_can(api: Api, clock: FixedClock):
    org = _org(api, clock, channel="self_serve")
    clock.set(datetime(2024, 4, 2, 15, 0, tzinfo=UTC))
    body = {"seat_type": "enterprise", "quantity": 10, "effective_date": "2024-04-01"}
    refused = api.post(f"/v1/organizations/{org.id}/seats", body, key=org.owner_key, expect=403)
    assert refused["error"]["code"] == "forbidden"
    assert api.post(f"/v1/organizations/{org.id}/seats", body, expect=201)["invoice"]["total"] == "901.64"


def test_self_serve_seats_cannot_be_removed_mid_term_but_a_reduction_can_be_scheduled(api: Api, clock: FixedClock):
    org = _org(api, clock, channel="self_serve")
    api.post(
        f"/v1/organizations/{org.id}/seats", {"seat_type": "enterprise", "quantity": 5}, key=org.owner_key, expect=201
    )
    refused = api.post(
        f"/v1/organizations/{org.id}/seats/reductions",
        {"seat_type": "enterprise", "quantity": 2},
        key=org.owner_key,
        expect=409,
    )
    assert refused["error"]["code"] == "seat_removal_not_allowed"
    assert "renewal" in refused["error"]["resume"]
    scheduled = api.post(
        f"/v1/organizations/{org.id}/seats/reductions",
        {"seat_type": "enterprise", "quantity": 2, "at": "renewal"},
        key=org.owner_key,
        expect=200,
    )
    assert scheduled["scheduled"]["at"] == "2025-01-01"
    seats = api.get(f"/v1/organizations/{org.id}/seats", key=org.owner_key, expect=200)
    assert seats["data"][0]["purchased"] == 5
    assert seats["scheduled_reductions"][0]["quantity"] == 2


def test_on_sales_assisted_only_the_operator_changes_seats_mid_term(api: Api, clock: FixedClock):
    org = _org(api, clock)
    clock.set(datetime(2024, 2, 1, 15, 0, tzinfo=UTC))
    body = {"seat_type": "enterprise", "quantity": 3}
    assert (
        api.post(f"/v1/organizations/{org.id}/seats", body, key=org.owner_key, expect=403)["error"]["code"]
        == "forbidden"
    )
    api.post(f"/v1/organizations/{org.id}/seats", body, expect=201)
    removed = api.post(
        f"/v1/organizations/{org.id}/seats/reductions", {"seat_type": "enterprise", "quantity": 1}, expect=200
    )
    assert removed["seats"]["data"][0]["purchased"] == 2
    assert removed["credit_note"]["kind"] == "credit_note"
    assert removed["credit_note"]["total"].startswith("-")


def test_assigned_seats_never_exceed_purchased_seats(api: Api, clock: FixedClock):
    org = _org(api, clock, channel="self_serve")
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "enterprise", "quantity": 1}, expect=201)
    _seat(api, org, org.owner_id)
    alice = add_member(api, org, "alice@acme.test", seat=None)
    forbidden = api.put(
        f"/v1/organizations/{org.id}/members/{alice['id']}/seat", {"seat_type": "enterprise"}, key=alice["api_key"]
    )
    assert forbidden["error"]["code"] == "forbidden"
    refused = _seat(api, org, alice["id"], expect=400)
    assert "all 1 enterprise seats are assigned" in refused["error"]["message"]
    api.put(
        f"/v1/organizations/{org.id}/members/{org.owner_id}/seat", {"seat_type": None}, key=org.owner_key, expect=200
    )
    _seat(api, org, alice["id"])
    assert api.get(f"/v1/organizations/{org.id}/seats", expect=200)["data"][0]["assigned"] == 1


def test_a_member_without_a_seat_is_refused_and_a_chat_seat_excludes_claude_code(api: Api, clock: FixedClock):
    org = _org(
        api,
        clock,
        channel="sales_assisted",
        plan="usage_based_legacy",
        seat_prices={"chat": "20.00", "chat_code": "100.00"},
    )
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "chat", "quantity": 2}, expect=201)
    refused = _hold(api, org, org.owner_id, expect=403)
    assert refused["error"]["code"] == "no_seat"
    assert refused["error"]["resume"]
    _seat(api, org, org.owner_id, "chat")
    _hold(api, org, org.owner_id, surface="web", key="web")
    refused = _hold(api, org, org.owner_id, surface="claude_code", key="code", expect=403)
    assert refused["error"]["code"] == "surface_not_in_seat"


def test_usage_at_2330_on_31_march_in_new_york_lands_on_the_march_invoice(api: Api, clock: FixedClock):
    org = _org(api, clock, timezone="America/New_York")
    alice = add_member(api, org, "alice@acme.test", seat=None)
    clock.set(datetime(2024, 4, 1, 12, 0, tzinfo=UTC))
    _usage(
        api,
        org,
        alice["id"],
        "late-evening",
        "2024-03-31T23:30:00-04:00",
        input_tokens=3,
        cache_write_5m_tokens=12_304,
        output_tokens=550,
    )
    _usage(api, org, alice["id"], "after-midnight", "2024-04-01T00:30:00-04:00", input_tokens=1_000_000)
    clock.advance(minutes=5)
    invoice = api.post(f"/v1/organizations/{org.id}/periods/2024-03/close", expect=200)
    assert (invoice["kind"], invoice["period"], invoice["status"]) == ("usage", "2024-03", "finalized")
    assert len(invoice["lines"]) == 1
    line = invoice["lines"][0]
    assert line["member_id"] == alice["id"] and line["model"] == "claude-sonnet-4-5"
    assert line["tokens"] == {"input": 3, "cache_write_5m": 12_304, "cache_write_1h": 0, "cache_read": 0, "output": 550}
    assert line["amount"] == "0.05"  # $0.054399, rounded once on the line
    assert invoice["total"] == "0.05"


def test_usage_at_2330_on_31_march_in_kolkata_is_march_and_half_an_hour_later_is_april(api: Api, clock: FixedClock):
    org = _org(api, clock, timezone="Asia/Kolkata")
    clock.set(datetime(2024, 4, 1, 12, 0, tzinfo=UTC))
    _usage(api, org, org.owner_id, "march", "2024-03-31T18:00:00Z", input_tokens=1_000_000)  # 23:30 IST
    _usage(api, org, org.owner_id, "april", "2024-03-31T19:00:00Z", input_tokens=2_000_000)  # 00:30 IST
    clock.advance(minutes=5)
    march = api.post(f"/v1/organizations/{org.id}/periods/2024-03/close", expect=200)
    assert march["total"] == "3.00"


def test_a_month_end_anchor_clamps_the_period_to_29_february_through_30_march(api: Api, clock: FixedClock):
    org = _org(api, clock, timezone="America/New_York", billing_anchor_day=31)
    clock.set(datetime(2024, 4, 1, 12, 0, tzinfo=UTC))
    _usage(api, org, org.owner_id, "in", "2024-03-30T23:00:00-04:00", input_tokens=1_000_000)
    _usage(api, org, org.owner_id, "out", "2024-03-31T00:30:00-04:00", input_tokens=2_000_000)
    clock.advance(minutes=5)
    february = api.post(f"/v1/organizations/{org.id}/periods/2024-02/close", expect=200)
    assert february["total"] == "3.00"
    early = api.post(f"/v1/organizations/{org.id}/periods/2024-03/close", expect=400)
    assert "runs until 2024-04-30" in early["error"]["message"]


def test_closing_a_period_twice_yields_one_document(api: Api, clock: FixedClock):
    org = _org(api, clock)
    clock.set(datetime(2024, 2, 1, 0, 5, tzinfo=UTC))
    first = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    second = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    assert first["id"] == second["id"]
    invoices = api.get(f"/v1/organizations/{org.id}/invoices", key=org.owner_key, expect=200)["data"]
    assert [i["period"] for i in invoices if i["kind"] == "usage"] == ["2024-01"]


def test_a_period_that_has_not_ended_cannot_be_closed_and_only_the_operator_closes(api: Api, clock: FixedClock):
    org = _org(api, clock)
    assert (
        api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=400)["error"]["code"] == "invalid_request"
    )
    clock.set(datetime(2024, 2, 2, tzinfo=UTC))
    refused = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", key=org.owner_key, expect=403)
    assert refused["error"]["code"] == "forbidden"


def test_late_usage_for_a_closed_period_goes_on_the_next_invoice_labelled(api: Api, clock: FixedClock):
    org = _org(api, clock)
    alice = add_member(api, org, "alice@acme.test", seat=None)
    clock.set(datetime(2024, 4, 1, 12, 0, tzinfo=UTC))
    march = api.post(f"/v1/organizations/{org.id}/periods/2024-03/close", expect=200)
    assert march["lines"] == []
    clock.set(datetime(2024, 4, 25, tzinfo=UTC))
    _usage(api, org, alice["id"], "late", "2024-03-20T10:00:00Z", input_tokens=1_000_000)  # $3.00
    _usage(api, org, alice["id"], "april", "2024-04-20T10:00:00Z", output_tokens=100_000)  # $1.50
    clock.set(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    april = api.post(f"/v1/organizations/{org.id}/periods/2024-04/close", expect=200)
    late = [ln for ln in april["lines"] if ln.get("late_period")]
    assert [(ln["late_period"], ln["amount"]) for ln in late] == [("2024-03", "3.00")]
    assert late[0]["description"].startswith("Late usage for 2024-03:")
    assert april["total"] == "4.50"
    again = api.post(f"/v1/organizations/{org.id}/periods/2024-03/close", expect=200)
    assert again["total"] == "0.00"  # the closed document never changes


def test_a_self_serve_close_is_a_statement_of_usage_paid_by_credits(api: Api, clock: FixedClock):
    org = _org(api, clock, channel="self_serve")
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    _usage(api, org, org.owner_id, "e1", "2024-01-10T10:00:00Z", input_tokens=1_000_000)
    clock.set(datetime(2024, 2, 2, tzinfo=UTC))
    statement = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    assert (statement["kind"], statement["total"]) == ("statement", "3.00")


def test_invoices_download_as_csv_and_as_a_printable_page(api: Api, clock: FixedClock):
    org = _org(api, clock)
    alice = add_member(api, org, "alice@acme.test", seat=None)
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    _usage(api, org, alice["id"], "e1", "2024-01-10T10:00:00Z", input_tokens=1_000_000)
    clock.set(datetime(2024, 2, 2, tzinfo=UTC))
    invoice = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    path = f"/v1/organizations/{org.id}/invoices/{invoice['id']}"
    by_suffix = api.client.get(path + ".csv", headers={"Authorization": f"Bearer {org.owner_key}"})
    by_accept = api.client.get(path, headers={"Authorization": f"Bearer {org.owner_key}", "Accept": "text/csv"})
    assert by_suffix.headers["content-type"].startswith("text/csv")
    assert by_suffix.text == by_accept.text
    rows = list(csv.DictReader(io.StringIO(by_suffix.text)))
    assert rows[0]["member_email"] == "alice@acme.test" and rows[0]["input_tokens"] == "1000000"
    assert rows[-1]["description"] == "Total" and rows[-1]["amount"] == "3.00"
    page = api.client.get(path + ".html", headers={"Authorization": f"Bearer {org.owner_key}"})
    assert page.headers["content-type"].startswith("text/html")
    assert "Per member" in page.text and "alice@acme.test" in page.text and "$3.00" in page.text
    member = api.client.get(path, headers={"Authorization": f"Bearer {alice['api_key']}"})
    assert member.status_code == 403


def test_seat_based_usage_stops_at_the_allowance_unless_extra_usage_is_enabled_and_is_billed(
    api: Api, clock: FixedClock
):
    org = _org(api, clock, plan="seat_based", seat_prices={"standard": "25.00", "premium": "60.00"})
    api.put(f"/v1/organizations/{org.id}/seat-allowances", {"included_usage": {"standard": "1.00"}}, expect=200)
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "standard", "quantity": 2}, expect=201)
    _seat(api, org, org.owner_id, "standard")
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    _hold(api, org, org.owner_id, amount="0.60", key="a")
    refused = _hold(api, org, org.owner_id, amount="0.60", key="b", expect=429)
    assert refused["error"]["code"] == "allowance_exhausted"
    assert "extra usage" in refused["error"]["resume"]
    member = add_member(api, org, "m@acme.test", seat="standard")
    forbidden = api.put(f"/v1/organizations/{org.id}/extra-usage", {"enabled": True}, key=member["api_key"], expect=403)
    assert forbidden["error"]["code"] == "forbidden"
    api.put(f"/v1/organizations/{org.id}/extra-usage", {"enabled": True}, key=org.owner_key, expect=200)
    _hold(api, org, org.owner_id, amount="0.60", key="b")
    _usage(api, org, org.owner_id, "big", "2024-01-10T10:00:00Z", input_tokens=1_000_000)  # $3.00
    clock.set(datetime(2024, 2, 1, 1, 0, tzinfo=UTC))
    invoice = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    amounts = {ln["description"].split(" at ")[0].split(" · ")[-1]: ln["amount"] for ln in invoice["lines"]}
    assert amounts["2 × standard seats"] == "50.00"
    assert amounts["extra usage beyond the $1.00 allowance"] == "2.00"
    assert invoice["total"] == "52.00"


def test_self_serve_seat_based_usage_is_invoiced_in_arrears_and_never_drawn_from_credits(api: Api, clock: FixedClock):
    org = _org(api, clock, channel="self_serve", plan="seat_based", seat_prices={"standard": "25.00"})
    api.put(f"/v1/organizations/{org.id}/seat-allowances", {"included_usage": {"standard": "1.00"}}, expect=200)
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "standard", "quantity": 1}, expect=201)
    _seat(api, org, org.owner_id, "standard")
    api.put(f"/v1/organizations/{org.id}/extra-usage", {"enabled": True}, key=org.owner_key, expect=200)
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "10.00", "idempotency_key": "c1"},
        key=org.owner_key,
        expect=201,
    )
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    hold = _hold(api, org, org.owner_id, amount="0.60", key="a")
    api.post(f"/v1/organizations/{org.id}/holds/{hold['id']}/void", key=org.service_key, expect=200)
    _usage(api, org, org.owner_id, "big", "2024-01-10T10:00:00Z", input_tokens=1_000_000)  # $3.00
    # The seat fee includes the allowance and extra usage is invoiced in arrears: credits pay for none of it.
    credits = api.get(f"/v1/organizations/{org.id}/credits", key=org.owner_key, expect=200)
    assert credits == {"balance": "10.00", "held": "0.00", "available": "10.00"}
    clock.set(datetime(2024, 2, 1, 1, 0, tzinfo=UTC))
    invoice = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    assert invoice["kind"] == "usage"
    assert invoice["total"] == "27.00"  # $25 seat fee + $2 extra usage, billed once


def test_a_seat_based_organization_with_no_credits_can_use_its_allowance(api: Api, clock: FixedClock):
    org = _org(api, clock, channel="self_serve", plan="seat_based", seat_prices={"standard": "25.00"})
    api.put(f"/v1/organizations/{org.id}/seat-allowances", {"included_usage": {"standard": "1.00"}}, expect=200)
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "standard", "quantity": 1}, expect=201)
    _seat(api, org, org.owner_id, "standard")
    _hold(api, org, org.owner_id, amount="0.60", key="a")


def test_a_legacy_renewal_moves_every_member_to_the_enterprise_seat(api: Api, app: App, clock: FixedClock):
    org = _org(api, clock, plan="usage_based_legacy", seat_prices={"chat": "20.00", "chat_code": "100.00"})
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "chat", "quantity": 3}, expect=201)
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "chat_code", "quantity": 1}, expect=201)
    _seat(api, org, org.owner_id, "chat_code")
    alice = add_member(api, org, "alice@acme.test", seat="chat")
    add_member(api, org, "bo@acme.test", seat=None)
    clock.set(datetime(2024, 12, 10, tzinfo=UTC))
    _usage(api, org, alice["id"], "oct", "2024-10-10T10:00:00Z", input_tokens=1_000_000)
    dry = api.post(
        f"/v1/organizations/{org.id}/renewal", {"dry_run": True, "seat_prices": {"enterprise": "50.00"}}, expect=200
    )
    assert dry["plan"] == "usage_based" and dry["seats"] == {"enterprise": 4}
    # The last three whole periods before today (the term ends later): September to November.
    assert [m["period"] for m in dry["comparison"]["months"]] == ["2024-09", "2024-10", "2024-11"]
    assert dry["comparison"]["months"][1] == {"period": "2024-10", "current": "163.00", "new": "203.00"}
    assert dry["comparison"]["current_total"] == "483.00" and dry["comparison"]["new_total"] == "603.00"
    assert api.get(f"/v1/organizations/{org.id}", expect=200)["plan"] == "usage_based_legacy"
    refused = api.post(f"/v1/organizations/{org.id}/renewal", {"seat_prices": {"enterprise": "50.00"}}, expect=400)
    assert "renews then" in refused["error"]["message"]

    members_before = api.get(f"/v1/organizations/{org.id}/members", key=org.owner_key, expect=200)["data"]
    clock.set(datetime(2025, 1, 1, 6, 0, tzinfo=UTC))
    renewed = api.post(f"/v1/organizations/{org.id}/renewal", {"seat_prices": {"enterprise": "50.00"}}, expect=200)
    assert renewed["term"] == {"start": "2025-01-01", "end": "2026-01-01"}
    assert renewed["invoice"]["total"] == "2400.00"  # 4 seats × $50 × 12
    members_after = api.get(f"/v1/organizations/{org.id}/members", key=org.owner_key, expect=200)["data"]
    assert len(members_after) == len(members_before)
    assert {m["email"]: m["seat_type"] for m in members_after} == {
        "owner@acme.test": "enterprise",
        "alice@acme.test": "enterprise",
        "bo@acme.test": None,
    }
    assert api.get(f"/v1/organizations/{org.id}", expect=200)["plan"] == "usage_based"
    assert run_worker_once(app).renewed == []  # already renewed: the worker leaves it alone


def test_the_worker_closes_ended_periods_and_renews_ended_terms_once(api: Api, app: App, clock: FixedClock):
    org = _org(api, clock)
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "enterprise", "quantity": 2}, expect=201)
    _seat(api, org, org.owner_id)
    clock.set(datetime(2024, 12, 31, 23, 0, tzinfo=UTC))
    _hold(api, org, org.owner_id)
    clock.set(datetime(2025, 1, 2, tzinfo=UTC))
    report = run_worker_once(app)
    assert report.expired_holds == 1
    assert [p for o, p in report.closed if o == org.id] == [f"2024-{m:02d}" for m in range(1, 13)]
    assert report.renewed == [org.id]
    again = run_worker_once(app)
    assert again.closed == [] and again.renewed == []
    invoices = api.get(f"/v1/organizations/{org.id}/invoices", key=org.owner_key, expect=200)["data"]
    numbers = [i["number"] for i in invoices]
    assert numbers == list(range(1, len(numbers) + 1))
    assert sum(i["kind"] == "usage" for i in invoices) == 12
    assert [i["total"] for i in invoices if i["kind"] == "seats"] == ["240.00", "240.00"]


def test_a_finalized_invoice_is_corrected_by_a_credit_note_and_never_changes(api: Api, clock: FixedClock):
    org = _org(api, clock)
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    _usage(api, org, org.owner_id, "e1", "2024-01-10T10:00:00Z", input_tokens=1_000_000)
    _usage(api, org, org.owner_id, "e2", "2024-01-11T10:00:00Z", input_tokens=1_000_000, output_tokens=1)
    clock.set(datetime(2024, 2, 2, tzinfo=UTC))
    invoice = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    path = f"/v1/organizations/{org.id}/invoices/{invoice['id']}/credit-notes"
    assert api.post(path, {}, key=org.owner_key, expect=403)["error"]["code"] == "forbidden"
    note = api.post(path, {"positions": [1]}, expect=201)
    assert (note["kind"], note["corrects_invoice_id"]) == ("credit_note", invoice["id"])
    assert note["total"] == "-" + invoice["lines"][0]["amount"]
    assert note["number"] == invoice["number"] + 1
    again = api.post(path, {"positions": [1]}, expect=400)
    assert "already credited" in again["error"]["message"]
    unchanged = api.get(f"/v1/organizations/{org.id}/invoices/{invoice['id']}", key=org.owner_key, expect=200)
    assert unchanged["total"] == invoice["total"] and unchanged["lines"] == invoice["lines"]
    refused = api.post(f"/v1/organizations/{org.id}/invoices/{note['id']}/credit-notes", {}, expect=400)
    assert "cannot itself be corrected" in refused["error"]["message"]


def test_the_openapi_document_describes_the_billing_endpoints(api: Api):
    paths = api.get("/openapi.json", key=None)["paths"]
    for path in (
        "/v1/organizations/{org}/seats",
        "/v1/organizations/{org}/seats/reductions",
        "/v1/organizations/{org}/members/{member}/seat",
        "/v1/organizations/{org}/invoices/{invoice}",
        "/v1/organizations/{org}/periods/{period}/close",
        "/v1/organizations/{org}/renewal",
    ):
        assert path in paths


def test_migrating_early_twice_on_the_same_day_charges_once(api: Api, clock: FixedClock):
    org = _org(api, clock, plan="usage_based_legacy", seat_prices={"chat": "20.00"})
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "chat", "quantity": 2}, expect=201)
    clock.set(datetime(2024, 4, 1, 15, tzinfo=UTC))
    body = {"effective_date": "2024-04-01", "seat_prices": {"enterprise": "50.00"}}
    first = api.post(f"/v1/organizations/{org.id}/renewal", body, expect=200)
    assert first["plan"] == "usage_based" and first["term"] == {"start": "2024-04-01", "end": "2025-04-01"}
    assert first["credit_note"]["total"] == "-360.66"  # 2 × 20 × 12 × 275/366
    assert first["invoice"]["total"] == "1200.00"
    second = api.post(f"/v1/organizations/{org.id}/renewal", body, expect=200)
    assert second["invoice"]["id"] == first["invoice"]["id"]
    kinds = [i["kind"] for i in api.get(f"/v1/organizations/{org.id}/invoices", key=org.owner_key, expect=200)["data"]]
    assert kinds == ["seats", "credit_note", "seats"]


def test_one_organization_the_worker_cannot_renew_does_not_stop_the_others(api: Api, app: App, clock: FixedClock):
    stuck = _org(api, clock, plan="usage_based_legacy", seat_prices={"chat": "20.00"})  # no enterprise price
    api.post(f"/v1/organizations/{stuck.id}/seats", {"seat_type": "chat", "quantity": 1}, expect=201)
    fine = _org(api, clock)
    clock.set(datetime(2025, 1, 2, tzinfo=UTC))
    report = run_worker_once(app)
    assert report.renewed == [fine.id]
    assert len(report.errors) == 1 and report.errors[0].startswith(f"{stuck.id}: invalid_request")
    assert len([p for o, p in report.closed if o == fine.id]) == 12


def test_a_seat_based_organization_moves_to_usage_based_only_after_its_ended_periods_are_closed(
    api: Api, clock: FixedClock
):
    org = _org(api, clock, plan="seat_based", seat_prices={"standard": "25.00"})
    api.put(f"/v1/organizations/{org.id}/seat-allowances", {"included_usage": {"standard": "1.00"}}, expect=200)
    api.post(f"/v1/organizations/{org.id}/seats", {"seat_type": "standard", "quantity": 2}, expect=201)
    _seat(api, org, org.owner_id, "standard")
    api.put(f"/v1/organizations/{org.id}/extra-usage", {"enabled": True}, key=org.owner_key, expect=200)
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    _usage(api, org, org.owner_id, "big", "2024-01-10T10:00:00Z", input_tokens=1_000_000)  # $3.00
    clock.set(datetime(2024, 2, 10, 15, tzinfo=UTC))
    body = {"effective_date": "2024-02-10", "seat_prices": {"enterprise": "50.00"}}
    refused = api.post(f"/v1/organizations/{org.id}/renewal", body, expect=400)
    assert "2024-01" in refused["error"]["message"] and "close" in refused["error"]["resume"].lower()
    january = api.post(f"/v1/organizations/{org.id}/periods/2024-01/close", expect=200)
    assert january["total"] == "52.00"  # 2 × 25.00 in seat fees + 2.00 of extra usage, under the seat-based plan
    assert api.post(f"/v1/organizations/{org.id}/renewal", body, expect=200)["plan"] == "usage_based"
