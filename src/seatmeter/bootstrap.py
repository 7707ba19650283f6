"""The one place that wires adapters into services: settings → engine, clock, price-book cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from seatmeter.adapters.clock import Clock, SystemClock
from seatmeter.adapters.db import create_db_engine, upgrade
from seatmeter.adapters.thread_connections import ThreadConnections
from seatmeter.services.key_cache import KeyCache
from seatmeter.services.price_book import PriceBookCache, install_shipped_versions
from seatmeter.services.uow import UnitOfWork
from seatmeter.settings import Settings

if TYPE_CHECKING:
    from seatmeter.services.hold_batches import HoldBatches

__all__ = ["App", "build"]


@dataclass
class App:
    settings: Settings
    engine: Engine
    clock: Clock
    prices: PriceBookCache = field(init=False)
    hold_batches: HoldBatches = field(init=False, repr=False)  # group commit of holds, one per process
    keys: KeyCache = field(init=False)
    # SQLite (a file): each thread keeps its connection between units of work; None on PostgreSQL.
    connections: ThreadConnections | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from seatmeter.services.hold_batches import HoldBatches  # noqa: PLC0415 - it imports App

        self.prices = PriceBookCache(self.engine)
        self.hold_batches = HoldBatches(self)
        self.keys = KeyCache(self.settings.key_cache_s)
        file_backed = self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:")
        # At most half of the pool is kept by threads: the rest stays for nested and read-only work.
        self.connections = ThreadConnections(self.engine, self.settings.db_pool_size // 2) if file_backed else None

    def uow(self, *, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, read_only=read_only, connections=self.connections)


def build(settings: Settings | None = None, *, clock: Clock | None = None, migrate: bool = True) -> App:
    settings = settings or Settings()
    if migrate:
        upgrade(settings.database_url)
    app = App(
        settings, create_db_engine(settings.database_url, pool_size=settings.db_pool_size), clock or SystemClock()
    )
    with app.uow() as uow:
        install_shipped_versions(uow.conn, app.clock.now())
        uow.commit()
    return app
