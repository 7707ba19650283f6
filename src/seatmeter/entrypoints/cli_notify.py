"""`seatmeter notify`: deliver spend notifications from the outbox (what `seatmeter worker` does on each tick)."""

from __future__ import annotations

import time

import typer

from seatmeter.bootstrap import build
from seatmeter.services.notifications import deliver_once
from seatmeter.settings import Settings

__all__ = ["notify_app"]

notify_app = typer.Typer(help="Spend notifications.", no_args_is_help=True)


@notify_app.command("deliver")
def deliver(
    loop: bool = typer.Option(False, "--loop", help="keep delivering until interrupted"),
    interval_s: float = typer.Option(5.0, "--interval", help="seconds between rounds with --loop"),
) -> None:
    """Send every due webhook and email; failures are retried with exponential backoff, then marked failed."""
    app = build(Settings())
    while True:
        report = deliver_once(app)
        if report.attempted or not loop:
            typer.echo(f"delivered {report.delivered}, retrying {report.retrying}, failed {report.failed}")
        if not loop:
            return
        time.sleep(interval_s)
