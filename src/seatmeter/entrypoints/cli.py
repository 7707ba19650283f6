"""The `seatmeter` command. It calls the same services as the API, directly on the database, as the operator."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from seatmeter.bootstrap import App, build
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import SeatmeterError
from seatmeter.entrypoints import cli_billing, cli_vendor
from seatmeter.entrypoints.cli_notify import notify_app
from seatmeter.settings import Settings

app = typer.Typer(help="seatmeter: billing and real-time spend control.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
credits_app = typer.Typer(help="Prepaid credits.", no_args_is_help=True)
caps_app = typer.Typer(help="Spend caps.", no_args_is_help=True)
usage_app = typer.Typer(help="Usage.", no_args_is_help=True)
prices_app = typer.Typer(help="The price book.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(caps_app, name="caps")
app.add_typer(usage_app, name="usage")
app.add_typer(prices_app, name="price-book")
cli_billing.register(app)
app.add_typer(notify_app, name="notify")
cli_vendor.register(app)

OPERATOR = Principal(PrincipalKind.OPERATOR)
console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
T = TypeVar("T")

# The CLI's twin of the API's status table: one exit code per family of errors.
EXIT_CODES = {
    "invalid_request": 2,
    "unknown_model": 2,
    "unauthenticated": 3,
    "forbidden": 3,
    "not_found": 4,
    "idempotency_conflict": 5,
    "seat_removal_not_allowed": 5,
    "hold_not_open": 5,
    "service_unavailable": 7,
}
USAGE_REFUSED_EXIT = 6


def _app() -> App:
    return build(Settings())


def run(action: Callable[[], T]) -> T:
    try:
        return action()
    except SeatmeterError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        if exc.resume:
            console.print(f"  {exc.resume}")
        raise typer.Exit(EXIT_CODES.get(exc.code, USAGE_REFUSED_EXIT)) from None


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def default_workers(database_url: str) -> int:
    """PostgreSQL: one worker process per CPU this process may run on (a worker is one Python interpreter, one
    core at most). SQLite: one. SQLite lets one writer at a time into the file; writers in other processes wait in
    its busy handler, which sleeps 1 to 100 ms between tries, while one process queues its writers on its own
    (holds of an organization share one transaction there). Measured with `holds_http_sqlite` on 2 cores, 16
    connections: one worker 2,091 holds/s, p99 17 ms; two workers 1,899/s, p99 44 ms (docs/performance.md)."""
    if database_url.startswith("sqlite"):
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = typer.Option(
        0,
        help="worker processes, each with its own database pool (0: one per CPU available to this process on "
        "PostgreSQL, one on SQLite)",
    ),
    access_log: bool = typer.Option(False, help="log every request (costs CPU per request; off in production)"),
    keep_alive_s: int = typer.Option(
        75, help="seconds an idle keep-alive connection stays open (longer than a load balancer's idle timeout)"
    ),
    backlog: int = typer.Option(2048, help="connections the kernel queues before the server accepts them"),
) -> None:
    """Serve the API, the dashboard and /openapi.json (uvloop and httptools, a response's writes sent as one; on
    PostgreSQL one worker per CPU by default, on SQLite one)."""
    import uvicorn

    settings = Settings()
    from seatmeter.adapters.db import upgrade

    upgrade(settings.database_url)
    workers = workers or default_workers(settings.database_url)
    console.print(
        f"seatmeter on http://{host}:{port}  (API docs: http://{host}:{port}/docs, database: {settings.database_url},"
        f" {workers} worker{'s' if workers != 1 else ''})"
    )
    uvicorn.run(
        "seatmeter.entrypoints.api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="seatmeter.adapters.http_protocol:CoalescingHttpToolsProtocol",  # httptools, one write per turn
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_keep_alive=keep_alive_s,
        backlog=backlog,
    )


@app.command()
def demo() -> None:
    """Create a demo organization with members, credits, caps and some usage, and print keys to explore it."""
    from seatmeter.services.demo import create_demo

    keys = run(lambda: create_demo(_app()))
    verb = "Created" if keys.created else "Found"
    console.print(f"{verb} the demo organization [bold]{keys.organization_id}[/bold]. New keys (shown once):")
    console.print(f"  owner   {keys.owner_key}")
    console.print(f"  member  {keys.member_key}   (Alice, capped at 20.00 USD a month)")
    console.print(f"  service {keys.service_key}")
    console.print(
        f"Try: curl -H 'Authorization: Bearer {keys.owner_key}' "
        f"http://127.0.0.1:8000/v1/organizations/{keys.organization_id}/usage/summary"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations (also done on every start)."""
    from seatmeter.adapters.db import upgrade

    settings = Settings()
    upgrade(settings.database_url)
    console.print(f"database is up to date: {settings.database_url}")


@orgs_app.command("create")
def orgs_create(
    name: str,
    owner_email: str,
    owner_name: str = "",
    timezone: str = "UTC",
    plan: str = "usage_based",
    channel: str = "self_serve",
    term_start: str = "",
    seat_price: list[str] = typer.Option([], help="seat_type=USD per seat per month, e.g. enterprise=10.00"),
    anchor_day: int = 1,
) -> None:
    """Create an organization and its primary owner; prints the owner's key once."""
    from seatmeter.services.organizations import create_organization

    application = _app()
    prices = dict(p.split("=", 1) for p in seat_price)
    body: dict[str, Any] = {
        "name": name,
        "timezone": timezone,
        "plan": plan,
        "channel": channel,
        "seat_prices": prices,
        "billing_anchor_day": anchor_day,
        "primary_owner": {"email": owner_email, "name": owner_name or owner_email},
    }
    if term_start:
        body["term_start"] = term_start
    org, owner = run(lambda: create_organization(application.uow(), OPERATOR, body, application.clock.now()))
    console.print(f"organization {org.id}\nprimary owner {owner.id} key {owner.api_key}")


@orgs_app.command("list")
def orgs_list() -> None:
    from seatmeter.services.organizations import list_organizations

    application = _app()
    table = Table("id", "name", "plan", "channel", "timezone", "term start")
    for org in run(lambda: list_organizations(application.uow(), OPERATOR)):
        table.add_row(org.id, org.name, org.plan, org.channel, org.timezone, org.term_start.isoformat())
    console.print(table)


@keys_app.command("create")
def keys_create(org: str, member: str = typer.Option("", help="a member id; without it, a service key")) -> None:
    """Issue a key: a member key with --member, else a service key for the organization's metering."""
    from seatmeter.services.organizations import create_service_key, issue_member_key

    application = _app()
    now = application.clock.now()
    if member:
        key = run(lambda: issue_member_key(application.uow(), OPERATOR, org, member, now))
    else:
        key = run(lambda: create_service_key(application.uow(), OPERATOR, org, now))
    console.print(key)


@credits_app.command("buy")
def credits_buy(org: str, amount: str, idempotency_key: str = typer.Option(..., "--key")) -> None:
    """Buy credits for a self-serve organization (idempotent on --key)."""
    from seatmeter.services.credits import buy_credits

    application = _app()
    balance, invoice = run(
        lambda: buy_credits(application.uow(), OPERATOR, org, amount, idempotency_key, application.clock.now())
    )
    console.print(f"balance {balance.balance} USD, available {balance.available} USD, receipt #{invoice['number']}")


@caps_app.command("set")
def caps_set(
    org: str,
    limit: str = typer.Argument(..., help='USD per period, or "unlimited"'),
    member: str = typer.Option("", help="a member id"),
    default: bool = typer.Option(False, "--default", help="the default cap of members without their own"),
) -> None:
    """Set the organization cap, a member's cap (--member) or the default member cap (--default)."""
    from seatmeter.services.caps import set_cap

    application = _app()
    scope = "member" if member else "member_default" if default else "organization"
    value = None if limit.lower() in ("unlimited", "null", "none") else limit
    out = run(
        lambda: set_cap(
            application.uow(), OPERATOR, org, scope, value, application.clock.now(), member_id=member or None
        )
    )
    console.print(f"{scope} cap: {out['limit'] or 'unlimited'}")


@usage_app.command("summary")
def usage_summary(
    org: str,
    period: str = typer.Option("", help="YYYY-MM; default the current period"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Spend per member for a billing period, with caps and credits."""
    from seatmeter.services.usage import usage_summary as summary

    application = _app()
    data = run(lambda: summary(application, OPERATOR, org, period or None))
    if as_json:
        _print_json(data)
        return
    title = f"Usage {data['period']} ({data['period_start'][:10]} to {data['period_end'][:10]}): {data['total']} USD"
    if "credits" in data:
        title += f" · credits available {data['credits']['available']} USD"
    org_cap = data["caps"]["organization"]
    title += f" · organization cap {org_cap['limit'] or 'unlimited'} ({org_cap['status']})"
    table = Table("member", "email", "spend (USD)", "held (USD)", "cap (USD)", "status", title=title)
    for m in data["members"]:
        table.add_row(m["name"], m["email"], m["spend"], m["held"], m["cap"] or "unlimited", m["cap_status"])
    console.print(table)


@prices_app.command("show")
def prices_show(model: str = typer.Option("", help="only this model")) -> None:
    """The price book: every version and its rates in USD per million tokens."""
    application = _app()
    book = application.prices.get(fresh=True)
    table = Table(
        "version",
        "effective from",
        "model",
        "input",
        "5m write",
        "1h write",
        "cache read",
        "output",
        "above prompt tokens",
    )
    for version in book.versions:
        for name, price in sorted(version.models.items()):
            if model and name != book.resolve(model):
                continue
            for band in price.bands:
                r = band.rates.to_json()
                table.add_row(
                    version.id,
                    version.effective_from.date().isoformat(),
                    name,
                    r["input"],
                    r["cache_write_5m"],
                    r["cache_write_1h"],
                    r["cache_read"],
                    r["output"],
                    str(band.above_prompt_tokens) if band.above_prompt_tokens else "",
                )
    console.print(table)


@prices_app.command("import")
def prices_import(file: Path) -> None:
    """Add a price-book version from a JSON file ({id, effective_from, models: {...}}), or a list of them."""
    from seatmeter.domain.pricing import PriceVersion
    from seatmeter.services.price_book import add_version

    application = _app()
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]error[/red] cannot read {file}: {exc}")
        raise typer.Exit(2) from None
    documents = data["versions"] if isinstance(data, dict) and "versions" in data else data
    for document in documents if isinstance(documents, list) else [documents]:

        def add(doc: Any = document) -> PriceVersion:
            return add_version(application.uow(), OPERATOR, doc, application.clock.now())

        version = run(add)
        console.print(
            f"version {version.id} effective {version.effective_from.isoformat()}: {len(version.models)} models"
        )


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="seatmeter")


if __name__ == "__main__":
    main()
