"""What must hold in the database after a fault, whatever moment the fault hit."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.faults.load import Acknowledged


def check_after_fault(url: str, org_id: str, ack: Acknowledged) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.execute(text(sql), {"o": org_id}).scalar_one() or 0)

        keys = {
            r[0]
            for r in conn.execute(
                text("SELECT idempotency_key FROM usage_events WHERE organization_id = :o"), {"o": org_id}
            )
        }
        assert ack.events <= keys, f"{len(ack.events - keys)} acknowledged events are missing"
        duplicated = one(
            "SELECT count(*) - count(DISTINCT idempotency_key) FROM usage_events WHERE organization_id = :o"
        )
        assert duplicated == 0
        hold_ids = {r[0] for r in conn.execute(text("SELECT id FROM holds WHERE organization_id = :o"), {"o": org_id})}
        assert ack.holds <= hold_ids, f"{len(ack.holds - hold_ids)} acknowledged holds are missing"
        for hold_id, event_id in ack.settled.items():
            row = conn.execute(
                text("SELECT status, event_id FROM holds WHERE organization_id = :o AND id = :h"),
                {"o": org_id, "h": hold_id},
            ).one()
            assert (row.status, row.event_id) == ("settled", event_id), (hold_id, row)
        costs = one("SELECT sum(cost_nano) FROM usage_events WHERE organization_id = :o")
        ledger = one("SELECT sum(amount_nano) FROM ledger_entries WHERE organization_id = :o AND kind = 'usage'")
        assert ledger == costs, f"ledger {ledger} != recorded costs {costs}"
        for account in ("organization", "credits"):
            posted = one(
                f"SELECT sum(posted_nano) FROM limit_accounts WHERE organization_id = :o AND account = '{account}'"
            )
            assert posted == costs, f"{account} posted {posted} != recorded costs {costs}"
        held = one("SELECT sum(held_nano) FROM limit_accounts WHERE organization_id = :o AND account = 'organization'")
        open_held = one("SELECT sum(amount_nano) FROM holds WHERE organization_id = :o AND status = 'open'")
        assert held == open_held, f"held {held} != open holds {open_held}"
        over = one(
            "SELECT count(*) FROM limit_accounts WHERE organization_id = :o AND limit_nano IS NOT NULL "
            "AND account <> 'credits' AND posted_nano + held_nano > limit_nano"
        )
        assert over == 0
        out = {
            "events": len(keys),
            "holds": len(hold_ids),
            "open_holds": one("SELECT count(*) FROM holds WHERE organization_id = :o AND status = 'open'"),
            "held_nano": held,
        }
    engine.dispose()
    return out
