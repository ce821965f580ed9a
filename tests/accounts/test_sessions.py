"""G6 cookies and lifetimes, logout server-side; G7 deactivation ends sessions and keys; G8 "log out other
sessions"."""

from __future__ import annotations

import runpy

import time_machine
from allauth.usersessions.models import UserSession
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from apps.accounts.models import MachineKey, Membership, Role
from apps.accounts.services import machine_key_authenticate, machine_key_create
from apps.org.models import Person
from tests.accounts.conftest import make_member, password_login

PAGE = "/accounts/email/"  # any page that needs a login


def _in(client) -> bool:
    response = client.get(PAGE)
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    return False


def test_cookie_settings_with_and_without_https(monkeypatch):
    monkeypatch.setenv("SPENDWATCH_HTTPS", "1")
    https = runpy.run_path("spendwatch/settings.py")
    monkeypatch.delenv("SPENDWATCH_HTTPS")
    plain = runpy.run_path("spendwatch/settings.py")
    assert (https["SESSION_COOKIE_NAME"], https["CSRF_COOKIE_NAME"]) == (
        "__Host-sessionid",
        "__Host-csrftoken",
    )
    assert https["SESSION_COOKIE_SECURE"] is https["CSRF_COOKIE_SECURE"] is True
    assert "SESSION_COOKIE_NAME" not in plain and plain["SESSION_COOKIE_SECURE"] is False
    for loaded in (https, plain):
        assert (loaded["SESSION_COOKIE_HTTPONLY"], loaded["SESSION_COOKIE_SAMESITE"]) == (True, "Lax")
        assert (loaded["SESSION_COOKIE_AGE"], loaded["SPENDWATCH_SESSION_IDLE_SECONDS"]) == (12 * 3600, 1800)


def test_the_session_cookie_as_sent_over_https(client, acme, settings):
    settings.SESSION_COOKIE_NAME = "__Host-sessionid"
    settings.SESSION_COOKIE_SECURE = True
    make_member(acme, "alice@acme.example")
    response = password_login(client, "alice@acme.example", secure=True)
    cookie = response.cookies["__Host-sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["path"] == "/" and not cookie["domain"]  # what the __Host- prefix demands
    assert cookie["max-age"] == ""  # ends with the browser unless "Remember me" is ticked


def test_idle_sessions_end_after_30_minutes(client, acme):
    make_member(acme, "alice@acme.example")
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        password_login(client, "alice@acme.example")
        key = client.cookies["sessionid"].value
        for _ in range(3):  # activity keeps it alive
            clock.shift(29 * 60)
            assert _in(client)
        clock.shift(30 * 60)
        assert not _in(client)
        assert not Session.objects.filter(session_key=key).exists()


def test_active_sessions_end_12_hours_after_login(client, acme):
    make_member(acme, "alice@acme.example")
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        password_login(client, "alice@acme.example")
        for _ in range(35):  # a request every 20 minutes up to 11 h 40
            clock.shift(20 * 60)
            assert _in(client)
        clock.shift(20 * 60)
        assert not _in(client)


def test_logout_ends_the_session_on_the_server(client, acme):
    make_member(acme, "alice@acme.example")
    password_login(client, "alice@acme.example")
    stolen = client.cookies["sessionid"].value
    client.post("/accounts/logout/")
    replay = Client()
    replay.cookies["sessionid"] = stolen
    assert not _in(replay)
    assert not Session.objects.filter(session_key=stolen).exists()


# --- G7 ---------------------------------------------------------------------------------------------


def _two_sessions_and_a_key(acme, email="lead@acme.example"):
    membership = make_member(acme, email, Role.MEMBER)
    laptop, phone = Client(), Client()
    for device in (laptop, phone):
        password_login(device, email)
        assert _in(device)
    # Created by the operator's CLI (only organisation-wide roles may grant scopes), recorded as theirs:
    # what matters here is that a key someone created stops when they do.
    key, key_text = machine_key_create(organisation=acme, name="gateway", scopes=["gateway"])
    MachineKey.objects.filter(pk=key.pk).update(created_by=membership.user)
    assert machine_key_authenticate(key_text) is not None
    return membership, (laptop, phone), key_text


def test_deactivating_a_login_ends_its_sessions_and_keys(acme):
    membership, devices, key_text = _two_sessions_and_a_key(acme)
    assert UserSession.objects.filter(user=membership.user).count() == 2
    user = membership.user
    user.is_active = False
    user.save()
    assert [_in(device) for device in devices] == [False, False]
    assert UserSession.objects.filter(user=user).count() == 0
    assert machine_key_authenticate(key_text) is None
    assert MachineKey.objects.get(created_by=user).revoked_at is not None
    response = Client().get("/api/v1/spend/", HTTP_AUTHORIZATION=f"Bearer {key_text}")
    assert response.status_code in (401, 403)


def test_a_bulk_deactivation_stops_the_keys_too(acme):
    membership, devices, key_text = _two_sessions_and_a_key(acme)
    get_user_model().objects.filter(pk=membership.user_id).update(is_active=False)  # no signal
    assert [_in(device) for device in devices] == [False, False]
    assert machine_key_authenticate(key_text) is None


def test_removing_the_membership_ends_sessions_and_keys(acme):
    membership, devices, key_text = _two_sessions_and_a_key(acme)
    Membership.objects.filter(pk=membership.pk).delete()
    assert [_in(device) for device in devices] == [False, False]
    assert machine_key_authenticate(key_text) is None


def test_a_person_who_left_is_logged_out_on_the_next_request(acme, people):
    membership = make_member(acme, "alice@acme.example", person=people["alice"])
    device = Client()
    password_login(device, "alice@acme.example")
    key, key_text = machine_key_create(organisation=acme, name="k", scopes=["ingest"])
    MachineKey.objects.filter(pk=key.pk).update(created_by=membership.user)
    # The HR import marks leavers with a bulk update: no signal fires.
    Person.objects.filter(pk=people["alice"].pk).update(is_active=False)
    assert machine_key_authenticate(key_text) is None
    assert not _in(device)
    assert MachineKey.objects.get(created_by=membership.user).revoked_at is not None
    password_login(device, "alice@acme.example")  # and cannot come back
    assert not _in(device)


# --- G8 ---------------------------------------------------------------------------------------------


def test_log_out_other_sessions(acme):
    make_member(acme, "alice@acme.example")
    laptop, phone = Client(), Client()
    for device in (laptop, phone):
        password_login(device, "alice@acme.example")
    page = laptop.get("/accounts/sessions/")
    assert page.status_code == 200 and "Sign Out Other Sessions" in page.content.decode()
    assert laptop.post("/accounts/sessions/", {}).status_code == 302
    assert (_in(laptop), _in(phone)) == (True, False)
