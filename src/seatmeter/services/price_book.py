"""Price-book use cases: the shipped versions, an in-process cache, adding a version, showing the book."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from importlib import resources
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from seatmeter.adapters.sql import insert_ignore
from seatmeter.adapters.tables import price_book_versions as pbv
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import Conflict, InvalidRequest
from seatmeter.domain.pricing import PriceBook, PriceVersion
from seatmeter.services.uow import UnitOfWork

__all__ = ["PriceBookCache", "add_version", "install_shipped_versions", "shipped_versions"]

REFRESH_S = 5.0


def shipped_versions() -> list[PriceVersion]:
    raw = json.loads(resources.files("seatmeter").joinpath("data/price_book.json").read_text())
    return [PriceVersion.parse(v) for v in raw["versions"]]


def install_shipped_versions(conn: Connection, now: datetime) -> None:
    conn.execute(
        insert_ignore(conn, pbv),
        [
            {"id": v.id, "effective_from": v.effective_from, "document": json.dumps(v.to_json()), "created_at": now}
            for v in shipped_versions()
        ],
    )


def _load(conn: Connection) -> tuple[int, PriceBook]:
    rows = conn.execute(select(pbv.c.document)).scalars().all()
    return len(rows), PriceBook(PriceVersion.parse(json.loads(doc)) for doc in rows)


class PriceBookCache:
    """The price book, read from the database at most every few seconds, and at once after a local change.

    Versions are append-only and a changed price must take effect in the future (see add_version), so a
    cache a few seconds old prices every event correctly.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._book: PriceBook | None = None
        self._count = -1
        self._checked = 0.0

    def get(self, *, fresh: bool = False) -> PriceBook:
        if self._book is not None and not fresh and time.monotonic() - self._checked < REFRESH_S:
            return self._book
        with self._lock, self._engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(pbv)).scalar_one()
            if self._book is None or count != self._count:
                self._count, self._book = _load(conn)
            self._checked = time.monotonic()
            return self._book

    def resolving(self, model: str) -> PriceBook:
        """The book, re-read once if it does not know `model` (an operator may have just added it)."""
        book = self.get()
        return book if book.knows(model) else self.get(fresh=True)


def add_version(uow: UnitOfWork, principal: Principal, document: Any, now: datetime) -> PriceVersion:
    """Add a version. A model already priced may only change price from now on: recorded usage keeps its price."""
    principal.require_operator()
    if not isinstance(document, dict):
        raise InvalidRequest("a price-book version is a JSON object with id, effective_from and models")
    version = PriceVersion.parse(document)
    with uow:
        existing = uow.conn.execute(select(pbv.c.document).where(pbv.c.id == version.id)).scalar_one_or_none()
        if existing is not None:
            if PriceVersion.parse(json.loads(existing)).to_json() == version.to_json():
                return version
            raise Conflict(
                f"price-book version {version.id!r} already exists with different content",
                resume="Choose a new version id; versions are never edited.",
            )
        _, book = _load(uow.conn)
        repriced = sorted(m for m in version.models if book.knows(m))
        if repriced and version.effective_from < now:
            raise InvalidRequest(
                f"{', '.join(repriced)} already have prices, so a new price can only take effect from now on "
                f"(effective_from {version.effective_from.isoformat()} is in the past)",
                resume="Set effective_from to a future time; usage already recorded keeps the price it had.",
            )
        uow.conn.execute(
            pbv.insert().values(
                id=version.id,
                effective_from=version.effective_from,
                document=json.dumps(version.to_json()),
                created_at=now,
            )
        )
        uow.commit()
    return version
