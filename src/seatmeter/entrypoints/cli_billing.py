"""`seatmeter billing close|renew` and `seatmeter worker`: the billing cycle from the command line."""

from __future__ import annotations

import time

import typer

from seatmeter.domain.auth import Principal, PrincipalKind

__all__ = ["billing_app", "register", "worker"]

billing_app = typer.Typer(help="Billing periods, invoices and renewals.", no_args_is_help=True)
OPERATOR = Principal(PrincipalKind.OPERATOR)


@billing_app.command("close")
def close(organization: str, period: str = typer.Argument(..., help="YYYY-MM")) -> None:
    """Close a billing period: its invoice (sales-assisted, seat-based) or statement (self-serve), issued once."""
    from seatmeter.entrypoints.cli import _app, _print_json, run
    from seatmeter.services.billing import close_period

    application = _app()
    _print_json(run(lambda: close_period(application, OPERATOR, organization, period)))


@billing_app.command("renew")
def renew(
    organization: str,
    dry_run: bool = typer.Option(False, "--dry-run"),
    effective_date: str = typer.Option("", help="YYYY-MM-DD before the term's end: migrate early"),
) -> None:
    """Renew an organization's term (or show, with --dry-run, what it would cost under the new plan)."""
    from seatmeter.entrypoints.cli import _app, _print_json, run
    from seatmeter.services.renewals import renew as renew_service

    application = _app()
    body = {"dry_run": dry_run, **({"effective_date": effective_date} if effective_date else {})}
    _print_json(run(lambda: renew_service(application, OPERATOR, organization, body)))


def worker(
    once: bool = typer.Option(False, "--once", help="one pass, then exit"),
    interval_s: float = typer.Option(30.0, help="seconds between passes"),
) -> None:
    """Close ended periods, renew ended terms and expire stale holds; safe to run several at once."""
    from seatmeter.entrypoints.cli import _app, console, run
    from seatmeter.services.worker import run_worker_once

    application = _app()
    while True:
        report = run(lambda: run_worker_once(application))
        console.print_json(data=report.to_json())
        if once:
            return
        time.sleep(interval_s)


def register(app: typer.Typer) -> None:
    app.add_typer(billing_app, name="billing")
    app.command("worker")(worker)
