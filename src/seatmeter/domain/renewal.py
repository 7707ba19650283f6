"""Renewals: the term rolls over, scheduled reductions apply, legacy plans migrate, and a dry run compares costs.

At renewal a `usage_based_legacy` organization moves every seated member to the single `enterprise` seat, and a
`seat_based` organization moves to `usage_based`. A reduction never takes a seat from a member who holds one:
it stops at the number of seats assigned, and the renewal says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.invoices import InvoiceLine, seat_line
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.domain.proration import MONTHS_PER_TERM, Term, prorate
from seatmeter.domain.seats import SEAT_TYPES, SeatAllowance, extra_usage, is_annual

__all__ = ["CostComparison", "MonthCost", "Renewal", "compare_costs", "plan_renewal", "target_plan"]

_MIGRATIONS = {"usage_based_legacy": "usage_based", "seat_based": "usage_based"}


def target_plan(plan: str) -> str:
    return _MIGRATIONS.get(plan, plan)


@dataclass(frozen=True, slots=True)
class Renewal:
    from_plan: str
    plan: str
    term: Term
    quantities: Mapping[str, int]  # seat type -> seats purchased for the new term
    member_seats: Mapping[str, str | None]  # member id -> seat type in the new term
    charge_lines: tuple[InvoiceLine, ...]  # the annual seat charge of the new term
    refund_lines: tuple[InvoiceLine, ...]  # unused days of the old term when migrating early (a credit note)
    notes: tuple[str, ...]


def plan_renewal(
    *,
    plan: str,
    term: Term,
    quantities: Mapping[str, int],
    reductions: Mapping[str, int],
    member_seats: Mapping[str, str | None],
    seat_prices: Mapping[str, Money],
    effective: date | None = None,
) -> Renewal:
    """What renewing (at the term's end) or migrating early (on `effective`) does. Pure: nothing is written."""
    day = term.end if effective is None else effective
    early = day < term.end
    if day < term.start:
        raise InvalidRequest(f"a renewal cannot take effect before the current term starts ({term.start.isoformat()})")
    if day > term.end:
        raise InvalidRequest(
            f"the current term ended {term.end.isoformat()}; renew on that day, not later",
            resume="Leave effective_date out to renew on the term's end.",
        )
    new_plan = target_plan(plan)
    notes: list[str] = []
    assigned: dict[str, int] = {}
    for seat in member_seats.values():
        if seat is not None:
            assigned[seat] = assigned.get(seat, 0) + 1

    kept: dict[str, int] = {}
    for seat_type in SEAT_TYPES[plan]:
        wanted = quantities.get(seat_type, 0) - reductions.get(seat_type, 0)
        floor = assigned.get(seat_type, 0)
        if wanted < floor:
            notes.append(f"the {seat_type} reduction stops at {floor} seats: {floor} members hold one")
        kept[seat_type] = max(wanted, floor, 0)

    if new_plan == plan:
        new_quantities = {t: q for t, q in kept.items() if q}
        new_member_seats = dict(member_seats)
    else:
        # Every seat of the old plan becomes an enterprise seat, so no member loses access.
        new_quantities = {"enterprise": sum(kept.values())} if sum(kept.values()) else {}
        new_member_seats = {m: ("enterprise" if s is not None else None) for m, s in member_seats.items()}
        notes.append(f"{plan} moves to {new_plan}: every seated member gets the enterprise seat")

    new_term = Term.starting(day) if early else term.next()
    charge_lines: list[InvoiceLine] = []
    if is_annual(new_plan):
        for seat_type, quantity in sorted(new_quantities.items()):
            price = _price(seat_prices, seat_type)
            charge_lines.append(
                seat_line(
                    f"{quantity} × {seat_type} seats at ${price}/month, term {new_term.start} to {new_term.end}",
                    quantity,
                    price.nano * MONTHS_PER_TERM * quantity,
                )
            )
    refund_lines: list[InvoiceLine] = []
    if early and is_annual(plan):
        for seat_type, quantity in sorted(quantities.items()):
            if quantity:
                share = prorate(_price(seat_prices, seat_type), quantity, term, day)
                refund_lines.append(
                    InvoiceLine(
                        f"Unused {seat_type} seats, {share.days_remaining}/{share.days_in_term} days of the term "
                        f"{term.start} to {term.end}",
                        -share.amount,
                        quantity=quantity,
                    )
                )
    return Renewal(
        plan,
        new_plan,
        new_term,
        new_quantities,
        new_member_seats,
        tuple(charge_lines),
        tuple(refund_lines),
        tuple(notes),
    )


def _price(seat_prices: Mapping[str, Money], seat_type: str) -> Money:
    try:
        return seat_prices[seat_type]
    except KeyError:
        raise InvalidRequest(
            f"the organization has no price for the {seat_type} seat",
            resume=f"Set seat_prices.{seat_type} (USD per seat per month) first.",
        ) from None


@dataclass(frozen=True, slots=True)
class MonthCost:
    period: str
    current: Money
    new: Money


@dataclass(frozen=True, slots=True)
class CostComparison:
    from_plan: str
    plan: str
    months: tuple[MonthCost, ...]

    @property
    def current_total(self) -> Money:
        return sum((m.current for m in self.months), Money.zero())

    @property
    def new_total(self) -> Money:
        return sum((m.new for m in self.months), Money.zero())


def compare_costs(
    *,
    plan: str,
    quantities: Mapping[str, int],
    member_seats: Mapping[str, str | None],
    seat_prices: Mapping[str, Money],
    allowances: Mapping[str, SeatAllowance],
    monthly_spend: Sequence[tuple[str, Mapping[str, Money]]],
) -> CostComparison:
    """What each of the given months cost under the current plan and would cost under the renewal's plan.

    `monthly_spend` is `[(period, {member id: usage at API rates})]`. Seats are counted as purchased
    today; each month's figure is rounded once to cents.
    """
    new_plan = target_plan(plan)
    current_seats_nano = 0
    for seat_type, quantity in quantities.items():
        fee = allowances[seat_type].monthly_fee if plan == "seat_based" else _price(seat_prices, seat_type)
        current_seats_nano += fee.nano * quantity
    if new_plan == plan:
        new_seats_nano = current_seats_nano
    else:
        new_seats_nano = _price(seat_prices, "enterprise").nano * sum(quantities.values())
    months = []
    for period, spend in monthly_spend:
        usage_nano = sum(m.nano for m in spend.values())
        if plan == "seat_based":
            billed_usage = 0
            for member_id, amount in spend.items():
                seat = member_seats.get(member_id)
                held = allowances.get(seat) if seat is not None else None
                allowance = held.included_usage if held is not None else Money.zero()
                billed_usage += extra_usage(amount, allowance).nano
        else:
            billed_usage = usage_nano
        months.append(
            MonthCost(
                period,
                Money.from_ratio(current_seats_nano + billed_usage, unit_nano=NANO_PER_CENT),
                Money.from_ratio(new_seats_nano + usage_nano, unit_nano=NANO_PER_CENT),
            )
        )
    return CostComparison(plan, new_plan, tuple(months))
