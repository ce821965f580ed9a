"""G9: every state-changing route refuses a POST without a CSRF token, and GETs change nothing."""

from __future__ import annotations

import re

from django.apps import apps as django_apps
from django.core import serializers
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.accounts.models import Role
from tests.accounts.conftest import add_totp, make_member

# Routes that take POSTs from outside a SpendWatch page, each authenticated by something else than the
# session cookie: the IdP's signed SAML messages, and the signed one-click unsubscribe link (RFC 8058).
CSRF_EXEMPT = {"/accounts/saml/x/acs/", "/accounts/saml/x/sls/", "/digests/unsubscribe/x/"}


def _routes() -> list[tuple[str, object]]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    return list(walk(get_resolver().url_patterns))


def _concrete(route: str) -> str | None:
    """A URL for the route, with 1 / "x" for its arguments; None for regex-only routes we cannot fill."""
    path = re.sub(r"<int:[^>]+>", "1", route)
    path = re.sub(r"<(?:str|slug):[^>]+>", "x", path)
    path = re.sub(r"\(\?P<[^>]+>\[\^/\]\+\)", "x", path)
    path = re.sub(r"<[^>]+>", "x", path).replace("^", "").replace("$", "")
    if any(ch in path for ch in "()[]?*+\\"):
        return None
    return "/" + path


def _cio_client(acme, **kwargs) -> Client:
    user = make_member(acme, "cio@acme.example", Role.CIO).user
    user.is_staff = user.is_superuser = True
    user.save()
    add_totp(user)
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_every_post_without_a_token_is_refused(acme):
    client = _cio_client(acme, enforce_csrf_checks=True)
    checked, api = 0, 0
    for route, view in _routes():
        url = _concrete(route)
        if url is None or url in CSRF_EXEMPT:
            continue
        response = client.post(url, {"name": "x"})
        if getattr(view, "cls", None) is not None and hasattr(view.cls, "authentication_classes"):
            # DRF views: the session authenticator enforces CSRF; machine-key views ignore the cookie.
            assert response.status_code in (401, 403, 404, 405), (route, response.status_code)
            api += 1
        else:
            assert response.status_code == 403, (route, response.status_code)
            checked += 1
    assert checked >= 150 and api >= 4  # the app's forms, allauth's and the admin's
    # The same kind of POST with the page's token goes through.
    page = client.get("/accounts/logout/")
    token = (
        page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    )
    assert client.post("/accounts/logout/", {"csrfmiddlewaretoken": token}).status_code == 302


def test_exempt_routes_are_only_the_documented_ones():
    exempt = {_concrete(route) for route, view in _routes() if getattr(view, "csrf_exempt", False)}
    drf = {
        _concrete(route)
        for route, view in _routes()
        if hasattr(getattr(view, "cls", None), "authentication_classes")
    }
    assert exempt - drf == CSRF_EXEMPT


def _snapshot() -> str:
    skip = {"sessions.session", "usersessions.usersession", "auth.user"}  # last_login and the session itself
    chunks = []
    for model in django_apps.get_models():
        if model._meta.label_lower in skip or model._meta.proxy or not model._meta.managed:
            continue
        chunks.append(serializers.serialize("json", model._default_manager.order_by("pk")))
    return "".join(chunks)


def test_no_get_changes_anything(acme, teams, people):
    from apps.budgets.selectors import budget_settings_get

    client = _cio_client(acme)
    budget_settings_get(acme)  # the one default row a page creates on first read (all defaults, idempotent)
    before = _snapshot()
    visited = 0
    for route, _ in _routes():
        url = _concrete(route)
        if url is None or "logout" in route:
            continue
        client.get(url)
        visited += 1
    assert visited >= 150
    assert _snapshot() == before
