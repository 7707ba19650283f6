"""The key cache's bound: an entry is trusted for ttl_s from before the read that filled it, and it only ever
answers for the exact key hash it was filled with, with exactly the principal the database returned."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services.key_cache import KeyCache

ALICE = Principal(PrincipalKind.MEMBER, "org_a", "mem_alice", "member")
ACME_SERVICE = Principal(PrincipalKind.SERVICE, "org_a")
BOB_OWNER = Principal(PrincipalKind.MEMBER, "org_b", "mem_bob", "owner")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_trusted_until_ttl_after_the_read_started_then_forgotten() -> None:
    clock = Clock()
    cache = KeyCache(ttl_s=5, clock=clock)
    started = cache.read_started()
    clock.now += 2  # the read itself took 2 s: the entry still ends 5 s after it started, not after the put
    cache.put("d1", ALICE, started)
    assert cache.get("d1") == ALICE
    clock.now = started + 4.999
    assert cache.get("d1") == ALICE
    clock.now = started + 5
    assert cache.get("d1") is None
    assert len(cache) == 0


def test_a_key_never_answers_with_another_keys_principal() -> None:
    cache = KeyCache(ttl_s=5, clock=Clock())
    cache.put("d1", ALICE, 100.0)
    cache.put("d2", BOB_OWNER, 100.0)
    assert cache.get("d1") == ALICE and cache.get("d2") == BOB_OWNER
    assert cache.get("d3") is None


def test_a_zero_bound_turns_the_cache_off() -> None:
    cache = KeyCache(ttl_s=0, clock=Clock())
    cache.put("d1", ALICE, 100.0)
    assert cache.get("d1") is None and len(cache) == 0


def test_a_full_cache_starts_over_instead_of_growing() -> None:
    cache = KeyCache(ttl_s=5, clock=Clock(), max_entries=3)
    for i in range(3):
        cache.put(f"d{i}", ALICE, 100.0)
    cache.put("d3", BOB_OWNER, 100.0)
    assert len(cache) == 1 and cache.get("d3") == BOB_OWNER and cache.get("d0") is None


PRINCIPALS = st.sampled_from([ALICE, ACME_SERVICE, BOB_OWNER])
DIGESTS = st.sampled_from(["d1", "d2"])
SECONDS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0])  # bounds and their neighbours
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), SECONDS),
        st.tuples(st.just("read"), DIGESTS, PRINCIPALS, SECONDS),
        st.tuples(st.just("get"), DIGESTS),
        st.tuples(st.just("forget"), DIGESTS),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(STEPS, st.sampled_from([0.0, 1.0, 5.0]))
def test_every_answer_is_what_the_database_said_for_that_key_less_than_ttl_ago(steps: list[Any], ttl: float) -> None:
    """A model of the database's answers: for each digest, the reads (start time, principal). Whatever the
    interleaving, a cached answer is the principal of some read of that same digest that started less than ttl
    before now, and never one read before the digest was last forgotten."""
    clock = Clock()
    cache = KeyCache(ttl_s=ttl, clock=clock)
    reads: dict[str, list[tuple[float, Principal]]] = {}
    for step in steps:
        if step[0] == "advance":
            clock.now += step[1]
        elif step[0] == "read":
            _, digest, principal, duration = step
            started = cache.read_started()
            clock.now += duration  # the database read takes time; the bound counts from its start
            reads.setdefault(digest, []).append((started, principal))
            cache.put(digest, principal, started)
        elif step[0] == "forget":
            cache.forget(step[1])
            reads.pop(step[1], None)
        else:
            answer = cache.get(step[1])
            if answer is not None:
                assert ttl > 0
                assert any(p == answer and clock.now - started < ttl for started, p in reads.get(step[1], [])), (
                    step,
                    answer,
                )
