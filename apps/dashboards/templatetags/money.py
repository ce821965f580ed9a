from decimal import ROUND_HALF_EVEN, Decimal

from django import template

register = template.Library()


@register.filter
def usd(nanos: int | None) -> str:
    """$12,345.68 from nano-dollars (display rounding only; the ledger stays exact)."""
    if nanos is None:
        return "unknown"
    dollars = (Decimal(nanos) / Decimal(1_000_000_000)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"${dollars:,.2f}"


@register.filter
def share(part: int, whole: int) -> str:
    if not whole:
        return "–"
    return f"{100 * part / whole:.1f}%"
