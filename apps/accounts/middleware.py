"""Per-request account policy: session lifetimes, people who left, and "MFA required" for some roles.

Both middlewares sit after AuthenticationMiddleware. An ended session is flushed server-side and the
request goes on as anonymous, so pages send the visitor to the login form and the API answers 403.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from apps.accounts.models import Membership

AUTHENTICATED_AT = "_sw_authenticated_at"
SEEN_AT = "_sw_seen_at"
# The last-seen stamp is written at most this often (seconds), so an active session is not saved on every
# request; the idle timeout is therefore exact to within this much.
SEEN_AT_RESOLUTION = 60
# Authenticators that count as a second factor (recovery codes only exist beside one of these).
SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def stamp_new_session(request: HttpRequest) -> None:
    """Start both session clocks; called on every login."""
    now = time.time()
    request.session[AUTHENTICATED_AT] = now
    request.session[SEEN_AT] = now


def session_has_expired(request: HttpRequest, now: float) -> bool:
    """True when the session is past its absolute or its idle lifetime; else records that it was seen."""
    session = request.session
    authenticated_at = session.get(AUTHENTICATED_AT)
    seen_at = session.get(SEEN_AT)
    if authenticated_at is None:
        # A session from before these clocks existed: its lifetimes count from now.
        stamp_new_session(request)
        return False
    if now - authenticated_at >= settings.SESSION_COOKIE_AGE:
        return True
    if seen_at is not None and now - seen_at >= settings.SPENDWATCH_SESSION_IDLE_SECONDS:
        return True
    if seen_at is None or now - seen_at >= SEEN_AT_RESOLUTION:
        session[SEEN_AT] = now
    return False


class SessionLifetimeMiddleware:
    """Ends sessions idle for SESSION_IDLE_SECONDS, and all sessions SESSION_COOKIE_AGE after login."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and session_has_expired(request, time.time()):
            logout(request)
        return self.get_response(request)


def mfa_required(user, role: str | None) -> bool:
    required = set(settings.SPENDWATCH_MFA_REQUIRED_ROLES)
    return (role is not None and role in required) or ("staff" in required and user.is_staff)


def has_second_factor(user) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type__in=SECOND_FACTORS).exists()


def _paths_open_without_mfa() -> tuple[str, ...]:
    # Setting up TOTP asks for the password again first, so reauthentication must stay reachable.
    return (
        reverse("mfa_index"),
        reverse("account_logout"),
        reverse("account_reauthenticate"),
        settings.STATIC_URL,
    )


class AccountPolicyMiddleware:
    """Logs out people whose Person left the organisation, and holds MFA-required roles at MFA setup.

    People who left: the HR import marks a Person inactive with a bulk update (no signal), so the check
    runs here, on the next request of each of their sessions (apps/accounts/services.py ends the rest).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        from apps.accounts.services import access_end  # services import models that import this app

        row = Membership.objects.filter(user_id=user.pk).values_list("role", "person__is_active").first()
        role, person_active = row if row else (None, None)
        if person_active is False:
            access_end(user_id=user.pk, reason="person.inactive")
            logout(request)
            return self.get_response(request)
        if mfa_required(user, role) and not request.path.startswith(_paths_open_without_mfa()):
            if not has_second_factor(user):
                return self._refuse(request)
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"detail": "Two-factor authentication must be set up before using SpendWatch."}, status=403
            )
        return redirect("mfa_activate_totp")
