from datetime import date

from seatmeter.domain.money import Money
from seatmeter.entrypoints.web import session
from seatmeter.entrypoints.web.charts import Series, render_daily_chart


def test_a_session_cookie_round_trips_and_refuses_tampering_another_secret_and_expiry():
    cookie = session.encode(b"secret", session.Session("abc123", expires_at=2_000))
    assert session.decode(b"secret", cookie, now_s=1_999) == session.Session("abc123", 2_000)
    assert session.decode(b"secret", cookie, now_s=2_000) is None
    assert session.decode(b"other", cookie, now_s=1_000) is None
    body, _, mac = cookie.partition(".")
    assert session.decode(b"secret", body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac, now_s=1_000) is None
    assert session.decode(b"secret", None, now_s=1_000) is None


def test_the_secret_is_stable_for_one_operator_key_and_the_configured_one_wins():
    assert session.session_secret("", "op") == session.session_secret("", "op") != session.session_secret("", "op2")
    assert session.session_secret("configured", "op") == b"configured"


def test_the_chart_is_self_contained_svg_with_one_bar_per_day_and_series():
    days = [date(2026, 11, d) for d in range(1, 31)]
    series = [
        Series("alice@acme.test", {0: Money.parse("2.50").nano, 3: Money.parse("1.00").nano}),
        Series("bob@acme.test", {0: Money.parse("0.50").nano}),
    ]
    svg = render_daily_chart(days, series, "Daily spend")
    assert svg.startswith("<svg") and svg.count("<rect") == 3
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from a network
    assert "alice@acme.test, 2026-11-01: $2.50" in svg and ">$5.00<" in svg  # 3.00 at most: the axis tops at 5.00
