"""G1 failed-login limits and trusted proxies; G2 the Django admin signs in through allauth."""

from __future__ import annotations

import time_machine
from django.contrib.auth import get_user_model

from apps.accounts.models import Role
from tests.accounts.conftest import PASSWORD, add_totp, make_member, password_login, totp_code

TOO_MANY = "Too many failed login attempts"


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_sixth_failure_for_one_account_is_refused_whatever_x_forwarded_for_says(client, acme):
    make_member(acme, "cio@acme.example", Role.MEMBER)
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        for attempt in range(5):
            # Each attempt claims another client address; untrusted, the header changes nothing.
            response = password_login(
                client, "cio@acme.example", "wrong-password", HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}"
            )
            assert response.status_code == 200 and TOO_MANY not in response.content.decode()
        # The 6th, with the right password, is refused: the limit is per account (5 per 5 minutes).
        response = password_login(client, "cio@acme.example", HTTP_X_FORWARDED_FOR="203.0.113.99")
        assert TOO_MANY in response.content.decode()
        assert not _logged_in(client)
        clock.shift(299)
        assert TOO_MANY in password_login(client, "cio@acme.example").content.decode()
        clock.shift(2)  # 5 minutes after the first failure
        response = password_login(client, "cio@acme.example")
        assert response.status_code == 302 and _logged_in(client)


def test_successful_login_does_not_wipe_the_failure_count(client, acme):
    make_member(acme, "alice@acme.example")
    # Attempts a second apart: allauth rolls a successful attempt back by its timestamp.
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        for _ in range(4):
            password_login(client, "alice@acme.example", "wrong-password")
            clock.shift(1)
        assert password_login(client, "alice@acme.example").status_code == 302
        client.post("/accounts/logout/")
        clock.shift(1)
        password_login(client, "alice@acme.example", "wrong-password")  # the 5th failure
        clock.shift(1)
        assert TOO_MANY in password_login(client, "alice@acme.example").content.decode()


def test_per_ip_limit_uses_remote_addr_unless_a_proxy_is_trusted(client, acme, settings):
    for n in range(12):
        make_member(acme, f"user{n}@acme.example")
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False):
        # 10 failures a minute per client address, over 10 different accounts.
        for n in range(10):
            response = password_login(
                client,
                f"user{n}@acme.example",
                "wrong-password",
                REMOTE_ADDR="198.51.100.1",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
            )
            assert TOO_MANY not in response.content.decode()
        spoofed = password_login(
            client, "user10@acme.example", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.77"
        )
        assert TOO_MANY in spoofed.content.decode()

    # Behind one trusted proxy (at 198.51.100.1), the address it appended is the client's.
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    with time_machine.travel("2026-09-01 10:00:00+00:00", tick=False):
        for n in range(10):
            password_login(
                client,
                f"user{n}@acme.example",
                "wrong-password",
                REMOTE_ADDR="198.51.100.1",
                HTTP_X_FORWARDED_FOR=f"6.6.6.6, 203.0.113.{n % 2}",  # the left entry is the client's claim
            )
        # 203.0.113.0 and .1 made 5 failures each: the per-IP limit is not reached for either.
        other = password_login(
            client, "user10@acme.example", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.0"
        )
        assert other.status_code == 302


def test_trusted_proxy_settings_come_from_the_environment(monkeypatch):
    import runpy

    monkeypatch.setenv("SPENDWATCH_TRUSTED_PROXY_COUNT", "2")
    monkeypatch.setenv("SPENDWATCH_TRUSTED_CLIENT_IP_HEADER", "X-Real-IP")
    loaded = runpy.run_path("spendwatch/settings.py")
    assert (loaded["ALLAUTH_TRUSTED_PROXY_COUNT"], loaded["ALLAUTH_TRUSTED_CLIENT_IP_HEADER"]) == (
        2,
        "X-Real-IP",
    )
    monkeypatch.delenv("SPENDWATCH_TRUSTED_PROXY_COUNT")
    monkeypatch.delenv("SPENDWATCH_TRUSTED_CLIENT_IP_HEADER")
    loaded = runpy.run_path("spendwatch/settings.py")
    assert (loaded["ALLAUTH_TRUSTED_PROXY_COUNT"], loaded["ALLAUTH_TRUSTED_CLIENT_IP_HEADER"]) == (0, None)
    assert loaded["ACCOUNT_RATE_LIMITS"]["login_failed"] == "10/m/ip,5/5m/key"


# --- G2: the admin ---------------------------------------------------------------------------------


def _staff(acme, email="admin@acme.example"):
    user = make_member(acme, email, Role.MEMBER).user
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def test_admin_login_page_sends_to_the_allauth_login(client, acme):
    _staff(acme)
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    # The admin's own form does not check passwords any more: a POST logs nobody in.
    response = client.post("/admin/login/", {"username": "admin@acme.example", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_admin_login_is_rate_limited_and_asks_for_the_second_factor(client, acme):
    user = _staff(acme)
    secret = add_totp(user)
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        response = password_login(client, "admin@acme.example")
        assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
        assert client.get("/admin/").status_code == 302  # not logged in before the code
        response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
        assert response.status_code == 302
        assert client.get("/admin/").status_code == 200
        client.post("/accounts/logout/")

        clock.shift(60)
        for _ in range(5):
            password_login(client, "admin@acme.example", "wrong-password")
        assert TOO_MANY in password_login(client, "admin@acme.example").content.decode()


def test_staff_without_an_authenticator_reaches_only_mfa_setup(client, acme):
    user = _staff(acme)
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/totp/activate/"
    add_totp(get_user_model().objects.get(pk=user.pk))
    assert client.get("/admin/").status_code == 200
