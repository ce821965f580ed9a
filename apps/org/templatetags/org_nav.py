"""The "Attribution" menu entry, shown only to those whose attribution page opens (never a 404 link)."""

from django import template
from django.urls import reverse
from django.utils.html import format_html

from apps.accounts.models import Membership, Role

register = template.Library()


@register.simple_tag(takes_context=True)
def attribution_nav(context) -> str:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    # CIO and FinOps (nav_sources, already known to the page); a manager of at least one team.
    allowed = context.get("nav_sources") or (
        Membership.objects.filter(user=user, role=Role.MANAGER, managed_teams__isnull=False).exists()
    )
    return format_html('<a href="{}">Attribution</a>', reverse("org:home")) if allowed else ""
