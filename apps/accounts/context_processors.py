"""Template context about the logged-in user's rights, decided by the same rules the selectors use."""

from django.http import HttpRequest

from apps.accounts.models import ORGANISATION_WIDE_ROLES, Membership


def navigation(request: HttpRequest) -> dict:
    """Which menu entries to show: never a link that would answer 404 for this user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_sources": False}
    role = Membership.objects.filter(user=user).values_list("role", flat=True).first()
    return {"nav_sources": role in ORGANISATION_WIDE_ROLES}
