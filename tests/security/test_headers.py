"""Security headers on every HTML page, and what is reachable without signing in (TESTPLAN K2, K3).

The pages are the GET routes of the access matrix (tests/security/test_access_matrix.py), opened by the
persona that may see each one, over HTTPS with the production HSTS settings. Every HTML answer must carry
HSTS, nosniff, a referrer policy, frame denial and the Content-Security-Policy; the policy's script rules
are exact (no inline script, no eval). K3: /healthz is open and says only ok/unavailable; /api/schema/ and
/api/docs/ need a signed-in person; /admin/ sends a visitor to the sign-in form.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from tests.security.test_access_matrix import MATRIX

pytestmark = pytest.mark.django_db

EXPECTED_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
HSTS = "max-age=31536000; includeSubDomains; preload"


@pytest.fixture
def https(settings):
    """The production values SPENDWATCH_HTTPS=1 sets (settings are read once, at start-up)."""
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    return settings


def policy_of(response) -> dict[str, str]:
    directives = [part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")]
    return {name: value for name, value in directives}


def assert_secure_headers(response, where: str) -> None:
    assert response["Strict-Transport-Security"] == HSTS, where
    assert response["X-Content-Type-Options"] == "nosniff", where
    assert response["Referrer-Policy"] == "same-origin", where
    assert response["X-Frame-Options"] == "DENY", where
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", where
    assert policy_of(response) == EXPECTED_POLICY, where


def html_pages() -> list[tuple[str, str]]:
    """(route, persona) for every GET page of the matrix, with a persona it answers 200 to."""
    pages = []
    for route, call in MATRIX.items():
        if call.method != "GET":
            continue
        persona = next((p for p in ("cio", "manager_a1", "member") if call.statuses.get(p) == 200), None)
        if persona is not None:
            pages.append((route, persona))
    return pages


def test_every_html_page_carries_the_security_headers_and_the_csp(world, https):
    checked = []
    for route, persona in html_pages():
        call = MATRIX[route]
        path = call.path.format(**world.ids, today=timezone.now().date().isoformat())
        response = world.clients[persona].get(path, secure=True)
        assert response.status_code == 200, (route, persona, response.status_code)
        if not response["Content-Type"].startswith("text/html"):
            continue  # CSV and JSON answers: nosniff and HSTS still apply
        assert_secure_headers(response, route)
        checked.append(route)
    anonymous = Client()
    response = anonymous.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert_secure_headers(response, "/accounts/login/")
    checked.append("/accounts/login/")
    # The matrix has well over 30 pages; a filter that silently skipped them all would prove nothing.
    assert len(checked) >= 30, checked


def test_hsts_is_sent_only_over_https(client, https):
    assert "Strict-Transport-Security" not in client.get("/accounts/login/")
    assert client.get("/accounts/login/", secure=True)["Strict-Transport-Security"] == HSTS


def test_health_answers_anyone_with_states_only(client, settings):
    settings.CELERY_BROKER_URL = "memory://"
    response = client.get("/healthz")

    assert response.status_code == 200
    assert json.loads(response.content) == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok"},
    }
    assert response["Cache-Control"].startswith("max-age=0")


def test_health_says_unavailable_without_naming_the_broker(client, monkeypatch):
    from spendwatch import health
    from spendwatch.celery import app

    secret_url = "redis://:hunter2-broker-password@10.9.8.7:6390/0"  # pragma: allowlist secret
    monkeypatch.setattr(app.conf, "broker_url", secret_url)
    monkeypatch.setattr(health, "BROKER_TIMEOUT_SECONDS", 0.2)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert json.loads(response.content) == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "unavailable"},
    }
    assert b"hunter2" not in response.content and b"10.9.8.7" not in response.content


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_api_schema_and_docs_are_for_signed_in_people_only(client, django_user_model, path, settings):
    settings.SPENDWATCH_MFA_REQUIRED_ROLES = []
    anonymous = client.get(path)
    assert anonymous.status_code == 403

    user = django_user_model.objects.create_user(username="m@acme.example", email="m@acme.example")
    client.force_login(user)
    signed_in = client.get(path)
    assert signed_in.status_code == 200
    if path == "/api/docs/":
        page = signed_in.content.decode()
        assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
        assert "cdn." not in page and "<script>" not in page  # no CDN, no inline script


def test_admin_sends_visitors_to_the_sign_in_form(client):
    response = client.get("/admin/", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert b"Site administration" not in response.content
