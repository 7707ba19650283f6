"""`seatmeter import anthropic-usage` and `seatmeter reconcile anthropic-cost`: vendor reports, as the operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from seatmeter.domain.money import Money

__all__ = ["import_app", "reconcile_app", "register"]

import_app = typer.Typer(help="Import usage from a vendor's reports.", no_args_is_help=True)
reconcile_app = typer.Typer(help="Compare seatmeter's costs with a vendor's reports.", no_args_is_help=True)


def _read_json(file: Path, what: str) -> Any:
    from seatmeter.entrypoints.cli import console

    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]error[/red] invalid_request: cannot read the {what} {file}: {exc}")
        raise typer.Exit(2) from None


def _key_map(entries: list[str]) -> Any:
    """`--key-map FILE.json` and `--key-map apikey_...=alice@acme.test`, in any mix."""
    merged: dict[str, Any] = {}
    for entry in entries:
        if "=" in entry and not Path(entry).exists():
            key, _, member = entry.partition("=")
            merged[key.strip()] = member.strip()
        else:
            loaded = _read_json(Path(entry), "key map")
            if not isinstance(loaded, dict):
                loaded = {"": loaded}  # refused below with the key map's own message
            merged.update(loaded)
    return merged


@import_app.command("anthropic-usage")
def import_anthropic_usage(
    file: Annotated[Path, typer.Argument(help="a usage_report/messages response (JSON), or a list of its pages")],
    org: Annotated[str, typer.Option("--org", help="the organization to bill")],
    key_map: Annotated[
        list[str],
        typer.Option(
            "--key-map", help="JSON file of vendor API key id -> member id or email, or KEY=MEMBER; repeatable"
        ),
    ],
    surface: Annotated[str, typer.Option(help="the surface the usage is recorded on")] = "api",
) -> None:
    """Load an Admin API usage report, mapping vendor API keys to members. Importing again counts once."""
    from seatmeter.entrypoints.cli import OPERATOR, _app, console, run
    from seatmeter.services.vendor_import import import_anthropic_usage as load
    from seatmeter.services.vendor_import import parse_key_map

    document = _read_json(file, "usage report")
    application = _app()
    result = run(lambda: load(application, OPERATOR, org, document, parse_key_map(_key_map(key_map)), surface))
    console.print(
        f"{file}: {result.rows} rows, {result.accepted} events recorded, {result.duplicates} already "
        f"imported, {result.skipped_empty} without tokens skipped"
    )


@reconcile_app.command("anthropic-cost")
def reconcile_anthropic_cost(
    file: Annotated[Path, typer.Argument(help="a cost_report response (JSON, amounts in cents), or a list of pages")],
    org: Annotated[str, typer.Option("--org", help="the organization the report belongs to")],
    tolerance: Annotated[str, typer.Option(help="USD per day and model below which rows count as equal")] = "0",
) -> None:
    """seatmeter's cost per day and model next to the vendor's; exits with 1 when they differ."""
    from seatmeter.entrypoints.cli import OPERATOR, _app, console, run
    from seatmeter.services.vendor_import import reconcile_anthropic_cost as reconcile

    allowed = run(lambda: Money.parse(tolerance, field="tolerance"))
    document = _read_json(file, "cost report")
    application = _app()
    differences = run(lambda: reconcile(application, OPERATOR, org, document))
    table = Table(
        "day",
        "model",
        "seatmeter (USD)",
        "vendor (USD)",
        "difference (USD)",
        "",
        title=f"{org}: seatmeter against {file.name}",
    )
    differing = 0
    for row in differences:
        off = abs(row.delta.nano) > allowed.nano
        differing += off
        table.add_row(
            row.day.isoformat(),
            row.model,
            str(row.ours),
            str(row.theirs),
            str(row.delta),
            "[red]differs[/red]" if off else "[green]ok[/green]",
        )
    ours = sum((d.ours for d in differences), Money.zero())
    theirs = sum((d.theirs for d in differences), Money.zero())
    table.add_section()
    table.add_row("total", "", str(ours), str(theirs), str(ours - theirs), "")
    console.print(table)
    if differing:
        console.print(f"{differing} of {len(differences)} day and model rows differ by more than {allowed} USD")
        raise typer.Exit(1)
    console.print(f"all {len(differences)} day and model rows agree")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.add_typer(reconcile_app, name="reconcile")
