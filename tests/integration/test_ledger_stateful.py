"""A stateful test of the ledger, caps and holds: random sequences of purchases, cap changes, holds, settles,
voids, expiries and unheld usage, driven through the real services on a fresh SQLite file per example, checked
after every step against a model kept in plain Python and against the ledger's own invariants."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.db import upgrade
from seatmeter.adapters.tables import holds, ledger_entries, limit_accounts, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Conflict, UsageRefused
from seatmeter.domain.limits import CREDITS, ORGANIZATION, Estimate, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.pricing import Usage
from seatmeter.services import caps, credits, organizations, seats, usage
from seatmeter.services import holds as holds_service
from tests.conftest import NOW, make_app

SONNET = "claude-sonnet-4-5"
PERIOD = "2026-11"
OPERATOR = Principal(PrincipalKind.OPERATOR)
_TEMPLATE: list[Path] = []

cents = st.integers(min_value=1, max_value=300).map(lambda c: Money(c * 10_000_000))
cap_limits = st.one_of(st.none(), st.integers(min_value=0, max_value=800).map(lambda c: Money(c * 10_000_000)))
token_usage = st.builds(
    Usage,
    input=st.integers(min_value=0, max_value=40_000),
    output=st.integers(min_value=0, max_value=40_000),
    cache_read=st.integers(min_value=0, max_value=40_000),
    cache_write_5m=st.integers(min_value=0, max_value=10_000),
)
NARROWEST = {"member": 0, ORGANIZATION: 1, CREDITS: 2}
CODE = {"member": "member_cap_reached", ORGANIZATION: "organization_cap_reached", CREDITS: "credits_exhausted"}


def _template() -> Path:
    if not _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="seatmeter-stateful-")) / "template.db"
        upgrade(f"sqlite:///{path}")
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


@dataclass
class Row:
    limit: int | None
    posted: int = 0
    held: int = 0
    tainted: bool = False  # moved by something other than holds: posted + held may pass the limit

    @property
    def room(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.posted - self.held)


@dataclass
class ModelHold:
    member: str
    amount: int
    expires_at: Any
    status: str = "open"
    settled_with: Usage | None = None
    key: str = ""
    body: dict[str, Any] = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    """The model: every limit row's limit, posted and held; every hold's status; the caps as configured."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="seatmeter-example-"))
        shutil.copy(_template(), self.dir / "db.sqlite")
        self.clock = FixedClock(NOW)
        self.app: App = make_app(f"sqlite:///{self.dir / 'db.sqlite'}", self.clock)
        self.book = self.app.prices.get()
        self.counter = 0
        self.steps = 0
        self.purchases: dict[str, Money] = {}
        self.holds: dict[str, ModelHold] = {}
        self.events: list[dict[str, Any]] = []
        self.org_cap: int | None = None
        self.default_cap: int | None = None
        self.own_caps: dict[str, int | None] = {}
        self.rows: dict[str, Row] = {}

    def teardown(self) -> None:
        event(f"steps {self.steps // 10 * 10}+")
        self.app.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------------------
    def _key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def _cap_of(self, account: str) -> int | None:
        if account == ORGANIZATION:
            return self.org_cap
        member = account.removeprefix("member:")
        return self.own_caps[member] if member in self.own_caps else self.default_cap

    def _row(self, account: str) -> Row:
        if account not in self.rows:
            self.rows[account] = Row(self._cap_of(account))
        return self.rows[account]

    def _accounts(self, member: str) -> list[str]:
        return [CREDITS, member_account(member), ORGANIZATION]

    def _overdue(self) -> list[str]:
        now = self.clock.now()
        return [h for h, m in self.holds.items() if m.status == "open" and m.expires_at <= now]

    def _expire(self, hold_ids: list[str]) -> None:
        for hold_id in hold_ids:
            hold = self.holds[hold_id]
            hold.status = "expired"
            for account in self._accounts(hold.member):
                self._row(account).held -= hold.amount

    # -- setup ---------------------------------------------------------------------------------------
    @initialize()
    def create_organization(self) -> None:
        now = self.clock.now()
        body = {
            "name": "Acme",
            "plan": "usage_based",
            "channel": "self_serve",
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "o@acme.test", "name": "O"},
        }
        org, owner = organizations.create_organization(self.app.uow(), OPERATOR, body, now)
        self.org_id = org.id
        self.owner = Principal(PrincipalKind.MEMBER, org.id, owner.id, "primary_owner")
        self.service = Principal(PrincipalKind.SERVICE, org.id)
        self.members = [owner.id] + [
            organizations.add_member(self.app.uow(), self.owner, org.id, {"email": f"m{i}@acme.test"}, now).id
            for i in range(2)
        ]
        seats.add_seats(self.app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": len(self.members)})
        for member_id in self.members:
            seats.assign_seat(self.app, OPERATOR, org.id, member_id, {"seat_type": "enterprise"})
        self.rows[CREDITS] = Row(0)
        self.buy_credits(Money.parse("5.00"), replay=False)

    # -- rules ---------------------------------------------------------------------------------------
    @rule(amount=cents, replay=st.booleans())
    def buy_credits(self, amount: Money, replay: bool) -> None:
        if replay and self.purchases:
            key = sorted(self.purchases)[0]
            amount = self.purchases[key]
        else:
            key = self._key("purchase")
            self.purchases[key] = amount
            self.rows[CREDITS].limit = (self.rows[CREDITS].limit or 0) + amount.nano
        credits.buy_credits(self.app.uow(), self.owner, self.org_id, str(amount), key, self.clock.now())

    @rule(limit=cap_limits)
    def set_organization_cap(self, limit: Money | None) -> None:
        self._set_cap("organization", limit, None)

    @rule(limit=cap_limits)
    def set_default_member_cap(self, limit: Money | None) -> None:
        self._set_cap("member_default", limit, None)

    @rule(limit=cap_limits, who=st.integers(min_value=0, max_value=2))
    def set_member_cap(self, limit: Money | None, who: int) -> None:
        self._set_cap("member", limit, self.members[who])

    @rule(who=st.integers(min_value=0, max_value=2))
    def clear_member_cap(self, who: int) -> None:
        member = self.members[who]
        caps.clear_member_cap(self.app.uow(), self.owner, self.org_id, member, self.clock.now())
        self.own_caps.pop(member, None)
        self._apply_caps()

    def _set_cap(self, scope: str, limit: Money | None, member: str | None) -> None:
        raw = None if limit is None else str(limit)
        caps.set_cap(self.app.uow(), self.owner, self.org_id, scope, raw, self.clock.now(), member_id=member)
        nano = None if limit is None else limit.nano
        if scope == "organization":
            self.org_cap = nano
        elif scope == "member_default":
            self.default_cap = nano
        else:
            assert member is not None
            self.own_caps[member] = nano
        self._apply_caps()

    def _apply_caps(self) -> None:
        for account, row in self.rows.items():
            if account == CREDITS:
                continue
            row.limit = self._cap_of(account)
            if row.limit is not None and row.posted + row.held > row.limit:
                row.tainted = True  # a cap lowered below what is already spent or held

    @rule(who=st.integers(min_value=0, max_value=2), amount=cents, allow_partial=st.booleans())
    def authorize_an_amount(self, who: int, amount: Money, allow_partial: bool) -> None:
        self._authorize(who, amount, (0, 0), False, allow_partial)

    @rule(
        who=st.integers(min_value=0, max_value=2),
        tokens=st.tuples(st.integers(min_value=0, max_value=50_000), st.integers(min_value=1, max_value=20_000)),
        allow_partial=st.booleans(),
    )
    def authorize_tokens(self, who: int, tokens: tuple[int, int], allow_partial: bool) -> None:
        self._authorize(who, Money.zero(), tokens, True, allow_partial)

    @rule(who=st.integers(min_value=0, max_value=2), amount=cents)
    def authorize_an_amount_partially(self, who: int, amount: Money) -> None:
        self._authorize(who, amount, (0, 0), False, True)

    def _authorize(
        self, who: int, amount: Money, tokens: tuple[int, int], by_tokens: bool, allow_partial: bool
    ) -> None:
        member = self.members[who]
        now = self.clock.now()
        if by_tokens:
            estimate_body: dict[str, Any] = {"input_tokens": tokens[0], "max_output_tokens": tokens[1]}
            estimate = self.book.estimate(SONNET, tokens[0], tokens[1], now)
        else:
            estimate_body = {"amount": str(amount)}
            estimate = Estimate(fixed_nano=amount.nano)
        key = self._key("hold")
        body = {
            "idempotency_key": key,
            "member_id": member,
            "model": SONNET,
            "surface": "api",
            "estimate": estimate_body,
            "allow_partial": allow_partial,
        }
        expected = self._expected_grant(member, estimate, allow_partial)
        overdue = self._overdue()
        if expected is None and overdue:
            # authorize releases overdue holds and decides again; the release is kept whatever it decides.
            self._expire(overdue)
            expected = self._expected_grant(member, estimate, allow_partial)
            event("authorize expires overdue holds and then " + ("refuses" if expected is None else "grants"))
        try:
            view = holds_service.authorize(self.app, self.service, self.org_id, body)
        except UsageRefused as refused:
            assert expected is None, f"refused ({refused.code}) although the model grants {expected}"
            rows = [(a, self._row(a)) for a in self._accounts(member)]
            blocking = [(a, r) for a, r in rows if r.room is not None and r.room < estimate.full_nano]
            narrowest = min(blocking, key=lambda ar: NARROWEST["member" if ar[0].startswith("member:") else ar[0]])
            scope = "member" if narrowest[0].startswith("member:") else narrowest[0]
            assert refused.code == CODE[scope]
            event(f"refused: {refused.code}")
            return
        assert expected is not None, f"granted {view.amount} although the model refuses"
        assert (view.amount.nano, view.max_output_tokens) == expected
        event("partial grant" if view.amount.nano < estimate.full_nano else "full grant")
        assert view.expires_at == now + timedelta(seconds=600)
        self.holds[view.id] = ModelHold(member, view.amount.nano, view.expires_at, key=key, body=body)
        for account in self._accounts(member):
            self._row(account).held += view.amount.nano

    def _expected_grant(self, member: str, estimate: Estimate, allow_partial: bool) -> tuple[int, int | None] | None:
        rooms = [r for a in self._accounts(member) if (r := self._row(a).room) is not None]
        room = min(rooms) if rooms else None
        full = estimate.full_nano
        if room is None or full <= room:
            return full, (estimate.max_output_tokens if estimate.from_tokens else None)
        if not allow_partial:
            return None
        if not estimate.from_tokens:
            return (room, None) if room > 0 else None
        lo, hi = 0, estimate.max_output_tokens  # the largest number of output tokens that fits, by bisection
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate.amount_for(mid) <= room:
                lo = mid
            else:
                hi = mid - 1
        best = lo or None
        return None if best is None else (estimate.amount_for(best), best)

    @rule(data=st.data(), tokens=token_usage)
    def settle_any_hold(self, data: st.DataObject, tokens: Usage) -> None:
        if self.holds:
            self._settle(data.draw(st.sampled_from(list(self.holds))), tokens)

    @rule(tokens=token_usage)
    def settle_the_latest_open_hold(self, tokens: Usage) -> None:
        open_holds = [h for h, m in self.holds.items() if m.status == "open"]
        if open_holds:
            self._settle(open_holds[-1], tokens)

    def _settle(self, hold_id: str, tokens: Usage) -> None:
        hold = self.holds[hold_id]
        now = self.clock.now()
        body = {
            "usage": {
                "input_tokens": tokens.input,
                "output_tokens": tokens.output,
                "cache_read_tokens": tokens.cache_read,
                "cache_write_5m_tokens": tokens.cache_write_5m,
            }
        }
        cost = self.book.cost(SONNET, tokens, NOW).cost.nano
        if hold.status == "open" and hold.expires_at > now:
            result = holds_service.settle(self.app, self.service, self.org_id, hold_id, body)
            assert result.cost.nano == cost
            assert result.exceeded_hold == (cost > hold.amount)
            hold.status, hold.settled_with = "settled", tokens
            for account in self._accounts(hold.member):
                row = self._row(account)
                row.held -= hold.amount
                row.posted += cost
                row.tainted |= cost > hold.amount
            event("settled above the hold" if cost > hold.amount else "settled within the hold")
        elif hold.status == "settled" and hold.settled_with == tokens:
            result = holds_service.settle(self.app, self.service, self.org_id, hold_id, body)
            assert result.cost.nano == cost  # a retry gets the first answer and posts nothing
        else:
            with pytest.raises(Conflict) as refused:
                holds_service.settle(self.app, self.service, self.org_id, hold_id, body)
            assert refused.value.code == "hold_not_open"

    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        if not self.holds:
            return
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        hold = self.holds[hold_id]
        if hold.status == "open" and hold.expires_at > self.clock.now():
            holds_service.void(self.app, self.service, self.org_id, hold_id)
            hold.status = "voided"
            for account in self._accounts(hold.member):
                self._row(account).held -= hold.amount
        elif hold.status == "voided":
            assert holds_service.void(self.app, self.service, self.org_id, hold_id).replayed
        else:
            with pytest.raises(Conflict) as refused:
                holds_service.void(self.app, self.service, self.org_id, hold_id)
            assert refused.value.code == "hold_not_open"

    @rule()
    def replay_a_hold(self) -> None:
        open_holds = [(h, m) for h, m in self.holds.items() if m.status == "open"]
        if not open_holds:
            return
        hold_id, hold = open_holds[-1]
        view = holds_service.authorize(self.app, self.service, self.org_id, hold.body)
        assert view.replayed and view.id == hold_id and view.amount.nano == hold.amount

    @rule(minutes=st.integers(min_value=1, max_value=12), sweep=st.booleans())
    def advance_the_clock(self, minutes: int, sweep: bool) -> None:
        self.clock.advance(minutes=minutes)
        if sweep:
            overdue = self._overdue()
            assert holds_service.expire_holds(self.app.uow(), self.clock.now()) == len(overdue)
            self._expire(overdue)

    @rule(
        batch=st.lists(
            st.tuples(st.integers(min_value=0, max_value=2), token_usage, st.integers(min_value=0, max_value=30)),
            min_size=1,
            max_size=4,
        ),
        replays=st.integers(min_value=0, max_value=2),
    )
    def record_usage_without_holds(self, batch: list[tuple[int, Usage, int]], replays: int) -> None:
        now = self.clock.now()
        fresh = []
        for who, tokens, ago in batch:
            fresh.append(
                {
                    "idempotency_key": self._key("evt"),
                    "member_id": self.members[who],
                    "model": SONNET,
                    "surface": "web",
                    "occurred_at": (now - timedelta(minutes=ago)).isoformat(),
                    "input_tokens": tokens.input,
                    "output_tokens": tokens.output,
                    "cache_read_tokens": tokens.cache_read,
                    "cache_write_5m_tokens": tokens.cache_write_5m,
                }
            )
        old = self.events[:replays]
        result = usage.record_usage(self.app, self.service, self.org_id, {"events": fresh + old})
        assert result == {"accepted": len(fresh), "duplicates": len(old)}
        self.events.extend(fresh)
        for (who, tokens, _), _event in zip(batch, fresh, strict=True):
            cost = self.book.cost(SONNET, tokens, NOW).cost.nano
            if cost == 0:
                continue
            for account in self._accounts(self.members[who]):
                row = self._row(account)
                row.posted += cost
                row.tainted = True

    # -- invariants ----------------------------------------------------------------------------------
    def _db(self) -> tuple[dict[str, Any], list[Any], list[Any], int]:
        with self.app.engine.connect() as conn:
            rows = {
                r.account: r
                for r in conn.execute(select(limit_accounts).where(limit_accounts.c.organization_id == self.org_id))
            }
            entries = conn.execute(select(ledger_entries).where(ledger_entries.c.organization_id == self.org_id)).all()
            hold_rows = conn.execute(select(holds).where(holds.c.organization_id == self.org_id)).all()
            event_total = conn.execute(
                select(func.coalesce(func.sum(usage_events.c.cost_nano), 0)).where(
                    usage_events.c.organization_id == self.org_id
                )
            ).scalar_one()
        return rows, entries, hold_rows, int(event_total)

    @invariant()
    def the_database_agrees_with_the_model_and_the_ledger_balances(self) -> None:
        if not hasattr(self, "org_id"):
            return
        self.steps += 1
        rows, entries, hold_rows, event_total = self._db()
        # Double entry, per account: what the ledger says moved in and out of credits is what the limit row holds.
        debits: dict[str, int] = {}
        credits_: dict[str, int] = {}
        for e in entries:
            debits[e.debit_account] = debits.get(e.debit_account, 0) + e.amount_nano
            credits_[e.credit_account] = credits_.get(e.credit_account, 0) + e.amount_nano
        assert sum(debits.values()) == sum(credits_.values())
        assert credits_.get(CREDITS, 0) == rows[CREDITS].limit_nano == sum(m.nano for m in self.purchases.values())
        assert debits.get(CREDITS, 0) == rows[CREDITS].posted_nano
        assert sum(e.amount_nano for e in entries if e.kind == "usage") == event_total == rows[CREDITS].posted_nano
        assert credits_.get("revenue", 0) == event_total
        # Every row: the model's figures, held = the open holds against it, and no overspend through holds.
        for account, model in self.rows.items():
            key = account
            if key not in rows:
                assert (model.posted, model.held) == (0, 0), account
                continue
            row = rows[key]
            assert (row.limit_nano, row.posted_nano, row.held_nano) == (model.limit, model.posted, model.held), account
            open_against = sum(
                h.amount_nano for h in hold_rows if h.status == "open" and account in h.accounts.split(",")
            )
            assert row.held_nano == open_against, account
            if not model.tainted and row.limit_nano is not None:
                assert row.posted_nano + row.held_nano <= row.limit_nano, account
            assert row.period == ("" if account == CREDITS else PERIOD)
        assert set(rows) <= set(self.rows)
        # Every hold is in the state the model says; a closed hold never changes again.
        assert {h.id: h.status for h in hold_rows} == {h: m.status for h, m in self.holds.items()}
        for h in hold_rows:
            assert h.amount_nano == self.holds[h.id].amount
            assert (h.status == "open") == (h.closed_at is None)


LedgerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_ledger_and_holds_keep_their_invariants_under_any_sequence_of_operations = LedgerMachine.TestCase
