from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.invoices import Invoice, InvoiceLine, credit_note, render_csv, render_html, usage_line
from seatmeter.domain.money import NANO_PER_CENT, Money

ISSUED = datetime(2024, 4, 1, 12, tzinfo=UTC)


def _invoice(lines, kind="usage", number=1):
    return Invoice("inv_1", "org_1", number, kind, "finalized", ISSUED, tuple(lines), period="2024-03")


def test_a_usage_line_is_rounded_once_to_the_cent_from_the_exact_sum():
    # Three events of $0.004 each: rounding each would give $0.00; the line is $0.012 → $0.01.
    line = usage_line(
        "ana@example.com",
        "m1",
        "claude-sonnet-4-5",
        {"input": 3, "output": 550, "cache_write_5m": 12_304},
        cost_nano=3 * 4_000_000,
    )
    assert str(line.amount) == "0.01"
    assert line.quantity == 12_857
    assert "12,304 cache write 5m" in line.description


def test_late_usage_lines_say_which_period_they_belong_to():
    line = usage_line("ana", "m1", "claude-opus-4-6", {"input": 1}, 5_000_000_000, late_period="2024-02")
    assert line.description.startswith("Late usage for 2024-02:")
    assert line.to_json()["late_period"] == "2024-02"


def test_a_credit_note_reverses_the_original_without_changing_it():
    original = _invoice([InvoiceLine("seats", Money.parse("901.64"), quantity=10)], kind="seats")
    note = credit_note(original, id="inv_2", number=2, issued_at=ISSUED)
    assert note.kind == "credit_note"
    assert note.corrects_invoice_id == "inv_1"
    assert str(note.total) == "-901.64"
    assert str(original.total) == "901.64"
    with pytest.raises(InvalidRequest):
        credit_note(note, id="inv_3", number=3, issued_at=ISSUED)


def test_the_csv_has_a_row_per_line_and_a_total_row():
    invoice = _invoice(
        [
            usage_line("ana", "m1", "claude-sonnet-4-5", {"input": 10, "output": 5}, 1_234_567_890),
            usage_line("bo", "m2", "claude-haiku-4-5", {"input": 7}, 10_000_000),
        ]
    )
    rows = render_csv(invoice, {"m1": "ana@example.com"}).splitlines()
    assert rows[0].startswith("invoice_number,kind,period,position,description")
    assert len(rows) == 4
    assert "ana@example.com" in rows[1]
    assert rows[-1].endswith(",1.24") and ",Total," in rows[-1]


def test_the_printable_page_lists_members_and_escapes_their_names():
    invoice = _invoice([usage_line("x", "m1", "claude-sonnet-4-5", {"input": 1}, 10_000_000)])
    page = render_html(invoice, "Acme <Labs>", {"m1": ("<b>Ana</b>", "ana@example.com")})
    assert "Acme &lt;Labs&gt;" in page
    assert "&lt;b&gt;Ana&lt;/b&gt;" in page
    assert "Per member" in page and "$0.01" in page


amounts = st.integers(min_value=-(10**13), max_value=10**13)


@given(st.lists(amounts, max_size=50))
def test_an_invoice_total_is_exactly_the_sum_of_its_lines(nanos):
    lines = [InvoiceLine(f"line {i}", Money.from_ratio(n, unit_nano=NANO_PER_CENT)) for i, n in enumerate(nanos)]
    invoice = _invoice(lines)
    assert invoice.total.nano == sum(line.amount.nano for line in lines)
    assert invoice.total.nano % NANO_PER_CENT == 0
    assert render_csv(invoice).splitlines()[-1].endswith("," + str(invoice.total))


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**12)), min_size=1, max_size=30))
def test_rounding_each_line_once_is_never_more_than_half_a_cent_per_line_off(lines):
    invoice = _invoice([usage_line("m", f"m{i}", "x", {"input": t}, c) for i, (t, c) in enumerate(lines)])
    exact = sum(c for _, c in lines)
    assert abs(invoice.total.nano - exact) <= len(lines) * NANO_PER_CENT // 2
