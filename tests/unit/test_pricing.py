"""The price book: exact costs at API rates, dated ids, bands, effective dates, and estimates that bound settles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import UnknownModel
from seatmeter.domain.money import Money
from seatmeter.domain.pricing import TOKEN_KINDS, PriceBook, Usage
from seatmeter.services.price_book import shipped_versions

BOOK = PriceBook(shipped_versions())
AT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
MODELS = sorted({m for v in BOOK.versions for m in v.models})
token_counts = st.integers(min_value=0, max_value=300_000)


def cost(model: str, at: datetime = AT, tier: str = "standard", **tokens: int) -> Money:
    return BOOK.cost(model, Usage(**tokens), at, tier).cost


def test_the_sonnet_example_of_the_design_costs_exactly_0_054399() -> None:
    assert cost("claude-sonnet-4-5", input=3, cache_write_5m=12_304, output=550) == Money.parse("0.054399")
    assert str(cost("claude-sonnet-4-5", input=3, cache_write_5m=12_304, output=550)) == "0.054399"


def test_each_cached_token_is_charged_once_in_its_own_kind() -> None:
    # Sonnet 4.5: 1M of each kind costs its published rate and nothing else.
    published = {"input": "3", "cache_write_5m": "3.75", "cache_write_1h": "6", "cache_read": "0.30", "output": "15"}
    for kind, usd in published.items():
        assert cost("claude-sonnet-4-5", **{kind: 1_000_000}) == Money.parse(usd), kind


def test_batch_is_half_of_standard_rounded_half_up_to_the_nano() -> None:
    # One Haiku 5.5 5-minute cache-write token: 125 nano standard, 62.5 nano batch, rounded up to 63.
    assert cost("claude-haiku-5-5", cache_write_5m=1).nano == 125
    assert cost("claude-haiku-5-5", tier="batch", cache_write_5m=1).nano == 63
    assert cost("claude-haiku-5-5", tier="batch", cache_write_5m=3).nano == 188  # 187.5
    assert cost("claude-sonnet-4-5", tier="batch", input=3, cache_write_5m=12_304, output=550) == Money.parse(
        "0.0271995"
    )


@given(st.sampled_from(MODELS), st.tuples(*[token_counts for _ in TOKEN_KINDS]))
def test_batch_always_equals_standard_halved_half_up(model: str, counts: tuple[int, ...]) -> None:
    usage = Usage(**dict(zip(TOKEN_KINDS, counts, strict=True)))
    standard = BOOK.cost(model, usage, AT).cost
    batch = BOOK.cost(model, usage, AT, "batch").cost
    assert batch == Money.from_ratio(standard.nano, 2)


@pytest.mark.parametrize(
    ("model_id", "model"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-haiku-3-5"),
        ("claude-3-5-haiku-latest", "claude-haiku-3-5"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-opus-4-6", "claude-opus-4-6"),
    ],
)
def test_dated_ids_and_aliases_resolve_to_their_model(model_id: str, model: str) -> None:
    assert BOOK.resolve(model_id) == model
    assert BOOK.cost(model_id, Usage(input=1_000_000), AT).model == model


@pytest.mark.parametrize(
    "model_id", ["claude-sonnet-9", "gpt-4o", "claude-sonnet-4-5-2025", "claude-sonnet-4-5-20250929-x", "", "sonnet"]
)
def test_an_unknown_model_is_refused_and_never_priced_at_zero(model_id: str) -> None:
    with pytest.raises(UnknownModel) as refused:
        BOOK.cost(model_id, Usage(input=10), AT)
    assert refused.value.code == "unknown_model"
    with pytest.raises(UnknownModel):
        BOOK.estimate(model_id, 10, 10, AT)


def test_haiku_5_5_above_100_000_prompt_tokens_prices_the_whole_request_at_the_long_band() -> None:
    # 100,000 input at 0.10 + 1,000 output at 0.50
    assert cost("claude-haiku-5-5", input=100_000, output=1_000) == Money.parse("0.0105")
    # 100,001 input at 0.50 + 1,000 output at 2.50: output moves to the long band too
    assert cost("claude-haiku-5-5", input=100_001, output=1_000) == Money.parse("0.0525005")
    # cache reads and writes count toward the prompt length
    assert cost("claude-haiku-5-5", input=50_000, cache_read=50_001) == Money.parse("0.02750005")
    assert cost("claude-haiku-5-5", input=50_000, cache_read=50_000) == Money.parse("0.0055")


def test_sonnet_5_5_cache_read_is_0_20_before_2026_10_07_and_0_10_from_then() -> None:
    before = datetime(2026, 10, 6, 23, 59, 59, tzinfo=UTC)
    on = datetime(2026, 10, 7, 0, 0, tzinfo=UTC)
    assert cost("claude-sonnet-5-5", at=before, cache_read=1_000_000) == Money.parse("0.20")
    assert cost("claude-sonnet-5-5", at=on, cache_read=1_000_000) == Money.parse("0.10")
    # the other rates of Sonnet 5.5 did not change
    assert cost("claude-sonnet-5-5", at=before, input=1_000_000, output=1_000_000) == Money.parse("12")
    assert cost("claude-sonnet-5-5", at=on, input=1_000_000, output=1_000_000) == Money.parse("12")


@given(st.sampled_from(MODELS), st.tuples(*[st.integers(min_value=0, max_value=20_000) for _ in TOKEN_KINDS]))
def test_cost_is_additive_over_token_kinds_within_one_band_and_never_negative(
    model: str, counts: tuple[int, ...]
) -> None:
    # Prompts here stay under 100,000 tokens, so every part is priced in the same band as the whole.
    tokens = dict(zip(TOKEN_KINDS, counts, strict=True))
    whole = cost(model, **tokens)
    parts = [cost(model, **{kind: n}) for kind, n in tokens.items()]
    assert whole == sum(parts)
    assert whole.nano >= 0
    assert all(p.nano >= 0 for p in parts)


@given(
    model=st.sampled_from(MODELS),
    prompt=st.integers(min_value=0, max_value=250_000),
    max_output=st.integers(min_value=1, max_value=200_000),
    data=st.data(),
)
def test_the_estimate_is_never_below_the_cost_of_a_settle_within_it(
    model: str, prompt: int, max_output: int, data: st.DataObject
) -> None:
    estimate = BOOK.estimate(model, prompt, max_output, AT).full_nano
    # Split the prompt tokens in any way among the input kinds, and use at most max_output output tokens.
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=prompt), min_size=3, max_size=3)))
    used_prompt = data.draw(st.integers(min_value=0, max_value=prompt))
    cuts = [min(c, used_prompt) for c in cuts]
    parts = [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], used_prompt - cuts[2]]
    output = data.draw(st.integers(min_value=0, max_value=max_output))
    usage = Usage(input=parts[0], cache_write_5m=parts[1], cache_write_1h=parts[2], cache_read=parts[3], output=output)
    assert usage.prompt_tokens <= prompt
    for tier in ("standard", "batch"):
        assert BOOK.cost(model, usage, AT, tier).cost.nano <= estimate


def test_the_estimate_prices_input_at_the_dearest_input_rate_and_rounds_up() -> None:
    # Sonnet 4.5: 1,000 input at the 1-hour cache-write rate (6) + 2,000 output at 15 = 0.006 + 0.03
    assert BOOK.estimate("claude-sonnet-4-5", 1_000, 2_000, AT).full_nano == Money.parse("0.036").nano
    # Haiku 5.5, 1 input token in the short band at 0.20 and 1 output at 0.50: 700 nano exactly
    assert BOOK.estimate("claude-haiku-5-5", 1, 1, AT).full_nano == 700
