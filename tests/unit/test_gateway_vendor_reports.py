import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import Money
from seatmeter.domain.pricing import Usage
from seatmeter.domain.vendor_reports import (
    cents_to_money,
    compare_costs,
    parse_cost_report,
    parse_usage_report,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _load(name):
    return json.loads((FIXTURES / name).read_text())


def test_usage_report_rows_carry_key_model_tier_and_tokens_by_kind():
    rows = parse_usage_report(_load("anthropic_usage_report.json"))
    assert len(rows) == 4
    first = rows[0]
    assert first.api_key_id == "apikey_01Rj2N8SVvo6BePZj99NhmiT"
    assert first.model == "claude-sonnet-4-5-20250929"
    assert first.starting_at == datetime(2026, 11, 2, tzinfo=UTC)
    assert first.usage == Usage(input=3, output=550, cache_write_5m=12_304)
    assert rows[1].service_tier == "batch"
    assert rows[2].usage == Usage(input=100_000, output=20_000, cache_write_1h=10_000, cache_read=1_000_000)


def test_idempotency_keys_are_stable_and_distinct_per_row():
    document = _load("anthropic_usage_report.json")
    keys = [row.idempotency_key for row in parse_usage_report(document)]
    again = [row.idempotency_key for row in parse_usage_report(json.loads(json.dumps(document)))]
    assert keys == again
    assert len(set(keys)) == len(keys)
    assert all(len(key) <= 200 for key in keys)


def test_a_list_of_pages_is_one_report():
    page = _load("anthropic_usage_report.json")
    assert len(parse_usage_report([page, {"data": [], "has_more": False}])) == 4


def test_flattened_cache_creation_fields_are_understood():
    document = {
        "data": [
            {
                "starting_at": "2026-11-02T00:00:00Z",
                "ending_at": "2026-11-03T00:00:00Z",
                "results": [
                    {
                        "model": "claude-haiku-4-5",
                        "uncached_input_tokens": 1,
                        "cache_creation_5m_input_tokens": 2,
                        "cache_creation_1h_input_tokens": 3,
                        "cache_read_input_tokens": 4,
                        "output_tokens": 5,
                    }
                ],
            }
        ]
    }
    (row,) = parse_usage_report(document)
    assert row.usage == Usage(input=1, cache_write_5m=2, cache_write_1h=3, cache_read=4, output=5)
    assert row.service_tier == "standard" and row.api_key_id is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(output_tokens=-1), "output_tokens"),
        (lambda r: r.update(model=None), "grouped by model"),
        (lambda r: r.update(service_tier="priority"), "priority"),
        (lambda r: r.update(uncached_input_tokens="12"), "uncached_input_tokens"),
    ],
)
def test_a_bad_row_refuses_the_whole_report_and_names_the_row(mutate, message):
    document = _load("anthropic_usage_report.json")
    mutate(document["data"][1]["results"][0])
    with pytest.raises(InvalidRequest, match=message) as refused:
        parse_usage_report(document)
    assert "page 0 bucket 1 result 0" in refused.value.message


def test_naive_bucket_times_are_refused():
    document = {"data": [{"starting_at": "2026-11-02T00:00:00", "ending_at": "2026-11-03T00:00:00Z", "results": []}]}
    with pytest.raises(InvalidRequest, match="time zone"):
        parse_usage_report(document)


def test_something_that_is_not_a_report_is_refused():
    with pytest.raises(InvalidRequest, match="data"):
        parse_usage_report({"rows": []})


def test_cost_amounts_are_cents_as_decimal_strings():
    assert cents_to_money("123.45", "amount") == Money.parse("1.2345")
    assert cents_to_money("30.0009", "amount") == Money.parse("0.300009")
    assert cents_to_money("0.0000001", "amount") == Money(1)
    with pytest.raises(InvalidRequest):
        cents_to_money(123.45, "amount")
    with pytest.raises(InvalidRequest):
        cents_to_money("12,50", "amount")


def test_cost_report_rows_are_read_per_day_with_token_and_other_costs():
    rows = parse_cost_report(_load("anthropic_cost_report.json"))
    assert len(rows) == 10
    sonnet = [r for r in rows if r.model == "claude-sonnet-4-5-20250929"]
    assert {r.day for r in sonnet} == {date(2026, 11, 2)}
    assert sum((r.amount for r in sonnet), Money.zero()) == Money.parse("1.014399")
    search = [r for r in rows if r.cost_type == "web_search"]
    assert len(search) == 1 and search[0].model is None and search[0].amount == Money.parse("0.12")


def test_a_currency_other_than_usd_is_refused():
    document = _load("anthropic_cost_report.json")
    document["data"][0]["results"][0]["currency"] = "EUR"
    with pytest.raises(InvalidRequest, match="USD"):
        parse_cost_report(document)


def test_comparison_lists_every_day_and_model_of_either_side():
    day = date(2026, 11, 2)
    ours = {(day, "a"): Money.parse("1.00"), (day, "b"): Money.parse("2.00")}
    theirs = [(day, "a", Money.parse("0.40")), (day, "a", Money.parse("0.60")), (day, "c", Money.parse("3.00"))]
    differences = compare_costs(ours, theirs)
    assert [(d.model, str(d.ours), str(d.theirs), str(d.delta)) for d in differences] == [
        ("a", "1.00", "1.00", "0.00"),
        ("b", "2.00", "0.00", "2.00"),
        ("c", "0.00", "3.00", "-3.00"),
    ]
