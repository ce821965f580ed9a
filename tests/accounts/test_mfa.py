"""G3 "MFA required" for CIO/FinOps/manager roles; TOTP codes single-use; recovery codes single-use;
G8 changing email or authenticators asks for reauthentication."""

from __future__ import annotations

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY

from apps.accounts.models import Role
from tests.accounts.conftest import PASSWORD, add_totp, make_member, password_login, recovery_codes, totp_code

SETUP = "/accounts/2fa/totp/activate/"


@pytest.mark.parametrize("role", [Role.CIO, Role.FINOPS, Role.MANAGER])
def test_required_roles_without_an_authenticator_reach_only_mfa_setup_and_logout(client, acme, role):
    user = make_member(acme, "lead@acme.example", role).user
    client.force_login(user)
    for path in ("/", "/budgets/", "/prices/", "/attribution/", "/accounts/email/", "/accounts/sessions/"):
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, SETUP), path
    response = client.get("/api/v1/spend/")
    assert response.status_code == 403 and "Two-factor" in response.json()["detail"]
    assert client.post("/budgets/new/", {}).status_code == 302  # a form post goes nowhere either
    assert client.get("/accounts/2fa/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_members_and_the_policy_switched_off_are_not_held(client, acme, settings):
    client.force_login(make_member(acme, "m@acme.example", Role.MEMBER).user)
    assert client.get("/accounts/email/").status_code == 200
    settings.SPENDWATCH_MFA_REQUIRED_ROLES = []
    client.force_login(make_member(acme, "cio@acme.example", Role.CIO).user)
    assert client.get("/accounts/email/").status_code == 200


def test_cio_sets_up_totp_and_is_then_let_through(client, acme):
    user = make_member(acme, "cio@acme.example", Role.CIO).user
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False):
        assert password_login(client, "cio@acme.example").status_code == 302
        assert client.get("/").status_code == 302
        # Adding an authenticator asks for the password again, even right after login.
        page = client.get(SETUP)
        assert page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/")
        page = client.post(page["Location"], {"password": PASSWORD}, follow=True)
        assert page.status_code == 200 and page.redirect_chain[-1][0] == SETUP
        secret = client.session[SECRET_SESSION_KEY]
        assert (
            client.post(SETUP, {"code": "000000" if totp_code(secret) != "000000" else "111111"}).status_code
            == 200
        )
        assert not Authenticator.objects.filter(user=user).exists()
        response = client.post(SETUP, {"code": totp_code(secret)})
        assert response.status_code == 302
        assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).count() == 1
        assert client.get("/accounts/email/").status_code == 200


def _login_with_code(client, email: str, code: str):
    password_login(client, email)
    return client.post("/accounts/2fa/authenticate/", {"code": code})


def test_a_totp_code_is_accepted_once(client, acme):
    user = make_member(acme, "cio@acme.example", Role.CIO).user
    secret = add_totp(user)
    with time_machine.travel("2026-09-01 09:00:05+00:00", tick=False) as clock:
        code = totp_code(secret)
        assert _login_with_code(client, "cio@acme.example", code).status_code == 302
        assert client.get("/accounts/email/").status_code == 200
        client.post("/accounts/logout/")

        clock.shift(5)  # same 30-second step: the code is still "current", but used
        response = _login_with_code(client, "cio@acme.example", code)
        assert response.status_code == 200 and "_auth_user_id" not in client.session
        assert "Incorrect code" in response.content.decode()

        clock.shift(30)  # the next step's code works
        assert client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)}).status_code == 302
        assert client.session["_auth_user_id"] == str(user.pk)


def test_a_recovery_code_is_accepted_once(client, acme):
    user = make_member(acme, "lead@acme.example", Role.MANAGER).user
    add_totp(user)
    codes = recovery_codes(user)
    assert len(codes) == 10
    assert _login_with_code(client, "lead@acme.example", codes[0]).status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    client.post("/accounts/logout/")
    response = _login_with_code(client, "lead@acme.example", codes[0])
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert recovery_codes(user) == codes[1:]
    assert _login_with_code(client, "lead@acme.example", codes[1]).status_code == 302


def test_wrong_password_never_reaches_the_code_step(client, acme):
    add_totp(make_member(acme, "cio@acme.example", Role.CIO).user)
    response = password_login(client, "cio@acme.example", "wrong-password")
    assert response.status_code == 200
    assert client.get("/accounts/2fa/authenticate/").status_code == 302  # no pending login


# --- G8 ---------------------------------------------------------------------------------------------


def test_changing_the_email_address_asks_for_the_password_again(client, acme):
    user = make_member(acme, "alice@acme.example").user
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        assert password_login(client, "alice@acme.example").status_code == 302
        clock.shift(60)
        response = client.post("/accounts/email/", {"action_add": "", "email": "evil@attacker.example"})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
        assert not user.emailaddress_set.filter(email="evil@attacker.example").exists()
        assert client.post("/accounts/reauthenticate/", {"password": "not-the-password"}).status_code == 200
        assert client.post("/accounts/reauthenticate/", {"password": PASSWORD}).status_code == 302
        client.post("/accounts/email/", {"action_add": "", "email": "new@acme.example"})
        assert user.emailaddress_set.filter(email="new@acme.example").exists()
        clock.shift(301)  # a reauthentication counts for 5 minutes (ACCOUNT_REAUTHENTICATION_TIMEOUT)
        response = client.post("/accounts/email/", {"action_add": "", "email": "other@acme.example"})
        assert response["Location"].startswith("/accounts/reauthenticate/")


def test_changing_authenticators_asks_for_a_code_again(client, acme):
    user = make_member(acme, "cio@acme.example", Role.CIO).user
    secret = add_totp(user)
    codes = recovery_codes(user)
    with time_machine.travel("2026-09-01 09:00:00+00:00", tick=False) as clock:
        assert _login_with_code(client, "cio@acme.example", totp_code(secret)).status_code == 302
        for path in ("/accounts/2fa/totp/deactivate/", "/accounts/2fa/recovery-codes/generate/"):
            response = client.post(path, {})
            assert response.status_code == 302 and "reauthenticate" in response["Location"], path
        assert Authenticator.objects.filter(user=user).count() == 2 and recovery_codes(user) == codes
        clock.shift(30)
        assert client.post("/accounts/2fa/reauthenticate/", {"code": totp_code(secret)}).status_code == 302
        assert client.post("/accounts/2fa/recovery-codes/generate/", {}).status_code == 302
        assert set(recovery_codes(user)).isdisjoint(codes)
        # An account with MFA cannot add an unverified address at all (allauth refuses it).
        response = client.post("/accounts/email/", {"action_add": "", "email": "evil@attacker.example"})
        assert "protected by two-factor authentication" in response.content.decode()
