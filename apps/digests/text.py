"""How money and changes read in a digest (display rounding only: the ledger stays exact)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from apps.usage.models import NANOS_PER_USD

_CENT = Decimal("0.01")
MINUS = "\u2212"  # a real minus sign: a hyphen before an amount wraps badly and reads as a dash


def dollars(nanos: int) -> Decimal:
    """Nano-dollars to dollars and cents, half to even: the dashboards' `usd` filter rounds the same way."""
    return (Decimal(nanos) / NANOS_PER_USD).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def usd(nanos: int | None) -> str:
    """'$1,234.57'; '–' for an unknown amount."""
    if nanos is None:
        return "–"
    amount = dollars(nanos)
    sign = MINUS if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def signed_usd(nanos: int) -> str:
    amount = dollars(nanos)
    if amount == 0:
        return "$0.00"
    return f"{'+' if amount > 0 else MINUS}${abs(amount):,.2f}"


def change(now: int, before: int) -> str:
    """'+$12.30, +15%', '−$4.00, −2%', 'no change', '+$5.00, new'."""
    delta = now - before
    if dollars(delta) == 0:
        return "no change"
    if before <= 0:
        return f"{signed_usd(delta)}, new"
    percent = Decimal(delta * 100) / Decimal(before)
    rounded = percent.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    sign = "+" if rounded > 0 else MINUS if rounded < 0 else "±"
    return f"{signed_usd(delta)}, {sign}{abs(rounded)}%"


def share(part: int, whole: int) -> str:
    """'12.5%' of a whole; '–' when there is no whole."""
    if whole <= 0:
        return "–"
    return f"{(Decimal(part * 100) / Decimal(whole)).quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)}%"
