"""Credits: prepaid, pooled usage balance of a self-serve organization."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import billing_repo, invoices_repo, orgs_repo
from seatmeter.adapters.tables import credit_purchases, ledger_entries, limit_accounts
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import Conflict, InvalidRequest
from seatmeter.domain.ids import new_id
from seatmeter.domain.limits import CREDITS
from seatmeter.domain.money import NANO_PER_CENT, NANO_PER_USD, Money
from seatmeter.services import notifications
from seatmeter.services.uow import UnitOfWork

__all__ = ["CreditBalance", "buy_credits", "get_credits"]

MAX_PURCHASE = Money(1_000_000_000 * NANO_PER_USD)


@dataclass(frozen=True)
class CreditBalance:
    balance: Money  # purchased - posted; negative when usage recorded after the fact overdrew it
    held: Money
    available: Money  # balance - held

    def to_json(self) -> dict[str, str]:
        return {"balance": str(self.balance), "held": str(self.held), "available": str(self.available)}


def _balance(conn: Any, org_id: str) -> CreditBalance:
    row = conn.execute(
        select(limit_accounts).where(limit_accounts.c.organization_id == org_id, limit_accounts.c.account == CREDITS)
    ).one()
    balance = Money(row.limit_nano - row.posted_nano)
    return CreditBalance(balance, Money(row.held_nano), balance - Money(row.held_nano))


def _require_self_serve(conn: Any, org_id: str) -> None:
    if not orgs_repo.get_organization(conn, org_id).self_serve:
        raise InvalidRequest(
            "this organization is sales-assisted: usage is invoiced monthly in arrears, there are no credits"
        )


def get_credits(uow: UnitOfWork, principal: Principal, org_id: str) -> CreditBalance:
    principal.require_member_of(org_id)
    with uow:
        _require_self_serve(uow.conn, org_id)
        return _balance(uow.conn, org_id)


def buy_credits(
    uow: UnitOfWork, principal: Principal, org_id: str, amount_raw: Any, idempotency_key: Any, now: datetime
) -> tuple[CreditBalance, dict[str, Any]]:
    """Add credits and issue a receipt. The same key and amount again returns the first purchase."""
    principal.require_owner(org_id)
    amount = Money.parse(amount_raw)
    if amount.nano <= 0 or amount > MAX_PURCHASE:
        raise InvalidRequest(f"amount must be more than 0.00 and at most {MAX_PURCHASE} USD")
    if amount.nano % NANO_PER_CENT:
        raise InvalidRequest(f"credits are bought in whole cents, got {amount}")
    if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 200:
        raise InvalidRequest("idempotency_key must be a string of 1 to 200 characters")
    try:
        return _buy_once(uow, principal, org_id, amount, idempotency_key, now)
    except IntegrityError:
        # The same purchase sent again while the first was in flight: that one committed, answer as its replay.
        return _buy_once(uow, principal, org_id, amount, idempotency_key, now)


def _buy_once(
    uow: UnitOfWork, principal: Principal, org_id: str, amount: Money, idempotency_key: str, now: datetime
) -> tuple[CreditBalance, dict[str, Any]]:
    with uow:
        conn = uow.conn
        _require_self_serve(conn, org_id)
        previous = conn.execute(
            select(credit_purchases).where(
                credit_purchases.c.organization_id == org_id, credit_purchases.c.idempotency_key == idempotency_key
            )
        ).one_or_none()
        if previous is not None:
            if previous.amount_nano != amount.nano:
                raise Conflict(
                    f"idempotency_key {idempotency_key!r} was used for a purchase of "
                    f"{Money(previous.amount_nano)} USD, not {amount} USD",
                    resume="Use a new idempotency_key for a new purchase.",
                )
            return _balance(conn, org_id), billing_repo.load_invoice(conn, org_id, previous.invoice_id).to_json()
        # Lock the credit row first, as every writer of this organization's limits does.
        conn.execute(
            update(limit_accounts)
            .where(limit_accounts.c.organization_id == org_id, limit_accounts.c.account == CREDITS)
            .values(limit_nano=limit_accounts.c.limit_nano + amount.nano)
        )
        notifications.limits_changed(conn, org_id, "", [CREDITS], now)
        invoice_id = invoices_repo.issue_invoice(
            conn,
            org_id,
            "credits",
            [invoices_repo.Line("Prepaid usage credits", amount, member_id=principal.member_id)],
            now,
        )
        purchase_id = new_id("cp")
        conn.execute(
            credit_purchases.insert().values(
                organization_id=org_id,
                id=purchase_id,
                idempotency_key=idempotency_key,
                amount_nano=amount.nano,
                member_id=principal.member_id,
                invoice_id=invoice_id,
                created_at=now,
            )
        )
        conn.execute(
            ledger_entries.insert().values(
                organization_id=org_id,
                id=new_id("le"),
                kind="credit_purchase",
                debit_account="payments",
                credit_account=CREDITS,
                amount_nano=amount.nano,
                reference=purchase_id,
                created_at=now,
            )
        )
        balance = _balance(conn, org_id)
        invoice = billing_repo.load_invoice(conn, org_id, invoice_id).to_json()
        uow.commit()
    return balance, invoice
