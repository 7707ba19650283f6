"""The batch path of record_usage agrees with the per-event domain: the same validation and errors, the same
costs, price versions and fingerprints, whatever the events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seatmeter.domain.errors import InvalidRequest, SeatmeterError
from seatmeter.domain.ids import new_id, new_ids
from seatmeter.domain.pricing import BatchPricer, PriceBook, PriceVersion, Usage
from seatmeter.domain.usage import USAGE_FIELDS, UsageEvent, event_fingerprint, parse_event, parse_events
from seatmeter.services.price_book import shipped_versions

# The shipped book, plus versions that exercise what the shipped one does not: a model listed only from a later
# date (so earlier instants have no price), two versions starting at the same instant (the later one wins),
# and a second banded model.
_EXTRA = [
    {
        "id": "2026-12-01-a",
        "effective_from": "2026-12-01T00:00:00+00:00",
        "models": {
            "claude-late-1": {
                "input": "1.10",
                "cache_write_5m": "1.3",
                "cache_write_1h": "2.2",
                "cache_read": "0.11",
                "output": "5.5",
            },
            "claude-sonnet-4-5": {
                "input": "2.5",
                "cache_write_5m": "3.125",
                "cache_write_1h": "5",
                "cache_read": "0.25",
                "output": "12.5",
            },
        },
    },
    {
        "id": "2026-12-01-b",
        "effective_from": "2026-12-01T00:00:00+00:00",
        "models": {
            "claude-late-1": {
                "input": "0.000001",
                "cache_write_5m": "0.000003",
                "cache_write_1h": "0.000007",
                "cache_read": "0.000001",
                "output": "0.000011",
                "bands": [
                    {
                        "above_prompt_tokens": 1000,
                        "input": "0.000002",
                        "cache_write_5m": "0.000005",
                        "cache_write_1h": "0.000009",
                        "cache_read": "0.000003",
                        "output": "0.000013",
                    }
                ],
            },
        },
    },
]
BOOK = PriceBook([*shipped_versions(), *(PriceVersion.parse(v) for v in _EXTRA)])
MODEL_IDS = sorted(
    {m for v in BOOK.versions for m in v.models}
    | {a for v in BOOK.versions for a in v.aliases}
    | {"claude-sonnet-4-5-20250929", "claude-late-1-20261201", "no-such-model", "claude-late-1-2026"}
)

_BOUNDARIES = sorted({v.effective_from + timedelta(microseconds=d) for v in BOOK.versions for d in (-1, 0, 1)})
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2023, 6, 1),
        max_value=datetime(2027, 6, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
    ),
    st.sampled_from(_BOUNDARIES),  # the instants where a version starts, and either side of them
)
# Around the band thresholds, and anywhere up to the largest count an event may carry.
tokens = st.one_of(st.integers(0, 2_000), st.integers(190_000, 210_000), st.integers(0, 100_000_000))


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except SeatmeterError as exc:
        return ("error", type(exc), exc.code, exc.message)


@settings(max_examples=400)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(MODEL_IDS),
            instants,
            st.sampled_from(["standard", "batch"]),
            st.tuples(tokens, tokens, tokens, tokens, tokens),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_batch_pricer_gives_exactly_the_cost_version_and_errors_of_the_price_book(events: list[Any]) -> None:
    pricer = BatchPricer(BOOK)  # one pricer for the whole list: its caches are shared as in a batch
    for model_id, at, tier, (inp, out, w5, w1h, read) in events:
        usage = Usage(input=inp, output=out, cache_write_5m=w5, cache_write_1h=w1h, cache_read=read)
        expected = _outcome(partial(BOOK.cost, model_id, usage, at, tier))
        if expected[0] == "ok":
            expected = ("ok", (expected[1].cost.nano, expected[1].version_id, expected[1].model))
        assert _outcome(partial(pricer.cost, model_id, at, tier, inp, out, w5, w1h, read)) == expected


def test_two_versions_starting_at_the_same_instant_price_with_the_later_one() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    assert BatchPricer(BOOK).cost("claude-late-1", at, "standard", 10, 0, 0, 0, 0)[1] == "2026-12-01-b"
    assert BOOK.cost("claude-late-1", Usage(input=10), at).version_id == "2026-12-01-b"
    assert BatchPricer(BOOK).cost("claude-sonnet-4-5", at, "standard", 10, 0, 0, 0, 0)[1] == "2026-12-01-a"


_VALID = {
    "idempotency_key": "k-1",
    "member_id": "mem_1",
    "model": "claude-sonnet-4-5",
    "surface": "api",
    "occurred_at": "2026-11-15T10:00:00Z",
    "input_tokens": 10,
    "output_tokens": 2,
}
_ANY_FIELD = [None, True, False, 0, -1, 1.0, 2.5, [], {}, "", datetime(2026, 11, 15, tzinfo=UTC)]
# Values near each field's edges, so that every check of the batch loop meets both sides of its limit.
_EDGES: dict[str, list[Any]] = {
    "idempotency_key": ["k", "x" * 200, "x" * 201, "hold:h_1", "hold", "Hold:h_1", "k-2"],
    "member_id": ["m", "x" * 40, "x" * 41, "mem_2"],
    "model": ["claude-opus-4", "x" * 100, "x" * 101, "claude-haiku-4-5"],
    "surface": ["web", "api", "claude_code", "galaxy", "API"],
    "service_tier": ["standard", "batch", "flex", "Batch"],
    "occurred_at": [
        "2026-11-15T10:00:00",
        "2026-11-15T10:00:00+02:00",
        "2026-11-15T10:00:00.123456Z",
        "2026-11-15",
        "not a time",
        "2026-11-15T10:00:00z",
        datetime(2026, 11, 15),
    ],
    **{name: [7, 100_000_000, 100_000_001, -1, True, False, 1.0, "5", None, 2**70] for name in USAGE_FIELDS},
    "cost": ["1.00"],
    "usage": [{"input_tokens": 1}],
}
_FIELDS = sorted(_EDGES)


class _Text(str):
    """A str subclass: only the per-event parser accepts it, so the batch loop must hand it over."""


changes = st.dictionaries(
    st.sampled_from(_FIELDS),
    st.none(),  # replaced below: the value depends on the field
    max_size=3,
).flatmap(
    lambda chosen: st.fixed_dictionaries({name: st.sampled_from([*_EDGES[name], *_ANY_FIELD]) for name in chosen})
)
raw_event = st.one_of(
    st.builds(
        lambda changes, drops: {**{k: v for k, v in _VALID.items() if k not in drops}, **changes},
        changes,
        st.sets(st.sampled_from(sorted(_VALID)), max_size=2),
    ),
    st.just({**_VALID, "model": _Text("claude-haiku-4-5")}),
    st.sampled_from([None, [], "event", 3]),
)


def _one_by_one(raws: list[Any]) -> list[Any]:
    events = [parse_event(raw, i) for i, raw in enumerate(raws)]
    return [
        (
            e.idempotency_key,
            e.member_id,
            e.model,
            e.surface,
            e.occurred_at,
            e.service_tier,
            e.usage.input,
            e.usage.output,
            e.usage.cache_write_5m,
            e.usage.cache_write_1h,
            e.usage.cache_read,
        )
        for e in events
    ]


def _assert_same_validation(raws: list[Any]) -> None:
    expected = _outcome(partial(_one_by_one, raws))
    assert _outcome(partial(parse_events, raws)) == expected, raws
    if expected[0] == "error":
        assert expected[1] is InvalidRequest


def test_batch_validation_agrees_on_every_edge_value_of_every_field() -> None:
    for name in _FIELDS:
        for value in [*_EDGES[name], *_ANY_FIELD]:
            changed = {**_VALID, name: value}
            _assert_same_validation([changed])
            _assert_same_validation([_VALID, changed, {**_VALID, "member_id": 3}])  # the first bad event wins
        _assert_same_validation([{k: v for k, v in _VALID.items() if k != name}])


@settings(max_examples=500)
@given(st.lists(raw_event, min_size=1, max_size=6))
def test_batch_validation_accepts_and_refuses_exactly_what_the_per_event_parser_does(raws: list[Any]) -> None:
    _assert_same_validation(raws)


@given(
    st.text(min_size=1, max_size=40),
    st.sampled_from(MODEL_IDS),
    st.sampled_from(["web", "api", "claude_code"]),
    instants,
    st.sampled_from(["standard", "batch"]),
    st.tuples(tokens, tokens, tokens, tokens, tokens),
)
def test_the_batch_fingerprint_is_the_event_fingerprint(
    member_id: str, model: str, surface: str, at: datetime, tier: str, counts: tuple[int, int, int, int, int]
) -> None:
    inp, out, w5, w1h, read = counts
    event = UsageEvent(
        "k",
        member_id,
        model,
        surface,
        at,
        tier,
        Usage(input=inp, output=out, cache_write_5m=w5, cache_write_1h=w1h, cache_read=read),
    )
    fast = event_fingerprint(member_id, model, surface, str(at.timestamp()), tier, inp, w5, w1h, read, out)
    assert fast == event.fingerprint


def test_a_different_event_under_the_same_fields_order_gets_a_different_fingerprint() -> None:
    at = str(datetime(2026, 11, 15, tzinfo=UTC).timestamp())
    base = event_fingerprint("m", "claude-sonnet-4-5", "api", at, "standard", 10, 0, 0, 0, 2)
    assert event_fingerprint("m", "claude-sonnet-4-5", "api", at, "standard", 2, 0, 0, 0, 10) != base
    assert event_fingerprint("m", "claude-sonnet-4-5", "api", at, "batch", 10, 0, 0, 0, 2) != base


def test_ids_drawn_together_look_like_single_ids_and_are_distinct() -> None:
    ids = new_ids("evt", 5_000)
    assert len(set(ids)) == 5_000
    single = new_id("evt")
    assert all(len(i) == len(single) == len("evt_") + 28 and i.startswith("evt_") for i in ids)
    assert all(int(i[4:], 16) >= 0 for i in ids)
    assert new_ids("evt", 0) == []


def test_ids_are_ordered_by_the_time_they_were_made() -> None:
    before_ms = time.time_ns() // 1_000_000
    first = new_id("hold")
    time.sleep(0.003)
    later = [new_id("hold"), *new_ids("hold", 3)]
    after_ms = time.time_ns() // 1_000_000
    assert all(first < i for i in later)
    # The head is the Unix time in milliseconds, as 12 hex digits.
    assert before_ms <= int(first[5:17], 16) <= after_ms
