"""Display rules for the ROI pages (rounding happens here only) and the "ROI" menu entry."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from django import template
from django.urls import reverse
from django.utils.html import format_html

from apps.accounts.models import Membership, Role

register = template.Library()

CENT = Decimal("0.01")


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


@register.filter
def usd_amount(amount: Decimal | None) -> str:
    """$1,234.57 from exact dollars; "–" when unknown."""
    if amount is None:
        return "–"
    return f"${cents(Decimal(amount)):,.2f}"


@register.filter
def usd_nanos(nanos: int | None) -> str:
    if nanos is None:
        return "–"
    return usd_amount(Decimal(nanos) / Decimal(1_000_000_000))


@register.filter
def times(ratio: Decimal | None) -> str:
    """A ratio as "4.20×"."""
    if ratio is None:
        return "–"
    return f"{cents(Decimal(ratio)):,.2f}×"


@register.filter
def percent(fraction: Decimal | float | None) -> str:
    """A fraction as "1.25%"."""
    if fraction is None:
        return "–"
    return f"{cents(Decimal(str(fraction)) * 100):,.2f}%"


@register.filter
def quantity(value: Decimal | float | None) -> str:
    """An outcome: whole numbers without decimals, others with up to four."""
    if value is None:
        return "–"
    value = Decimal(str(value))
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_EVEN).normalize():,f}"


@register.filter
def signed(value: float | None, places: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:+,.{places}f}"


@register.simple_tag(takes_context=True)
def roi_nav(context) -> str:
    """The menu entry, shown only to those whose Metrics page opens (never a 404 link)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    allowed = context.get("nav_sources") or (
        Membership.objects.filter(user=user, role=Role.MANAGER, managed_teams__isnull=False).exists()
    )
    return format_html('<a href="{}">ROI</a>', reverse("metrics:home")) if allowed else ""


@register.filter
def whole_percent(fraction: float | None) -> str:
    """0.95 as "95%"."""
    if fraction is None:
        return "–"
    return f"{Decimal(str(fraction)) * 100:.0f}%"
