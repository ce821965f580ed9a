"""The dashboards' menu entries, shown only where they open (never a link that answers 404)."""

from django import template
from django.urls import reverse
from django.utils.html import format_html_join

from apps.accounts.models import Membership, Role

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboards_nav(context) -> str:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    if context.get("nav_sources"):  # CIO or FinOps, already known to the page
        sees_teams = True
    else:
        role = Membership.objects.filter(user=user).values_list("role", flat=True).first()
        if role is None:
            return ""
        sees_teams = role != Role.MEMBER  # a member's own usage is on their person page, not a team's
    entries = [("Teams", "dashboards:teams")] if sees_teams else []
    entries += [("Models", "dashboards:models"), ("Tasks", "dashboards:tasks")]
    return format_html_join(
        "\n      ", '<a href="{}">{}</a>', ((reverse(name), label) for label, name in entries)
    )
