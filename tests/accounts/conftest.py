"""Accounts tests: the MFA policy on (the suite's conftest turns it off elsewhere) and an empty cache, since
rate limits and used TOTP codes live there."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import cache

from apps.accounts.models import Membership, Role
from apps.accounts.services import membership_create

PASSWORD = "correct-horse-battery-9"
MFA_ROLES = ["cio", "finops", "manager", "staff"]


@pytest.fixture(autouse=True)
def _mfa_policy_on(settings, _mfa_policy_off):
    settings.SPENDWATCH_MFA_REQUIRED_ROLES = MFA_ROLES
    # These tests log in by password dozens of times: a fast hash keeps them quick (the flow is the same).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def make_member(organisation, email: str, role: str = Role.MEMBER, **kwargs) -> Membership:
    return membership_create(organisation=organisation, email=email, password=PASSWORD, role=role, **kwargs)


def totp_code(secret: str, at: float | None = None) -> str:
    """The code an authenticator app shows at `at` (default: now, as the app's clock says)."""
    return format_hotp_value(hotp_value(secret, int(at if at is not None else time.time()) // 30))


def add_totp(user) -> str:
    """Give `user` a TOTP authenticator (and recovery codes); returns the TOTP secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    return secret


def recovery_codes(user) -> list[str]:
    from allauth.mfa.models import Authenticator

    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    return authenticator.wrap().get_unused_codes()


def password_login(client, email: str, password: str = PASSWORD, **extra):
    return client.post("/accounts/login/", {"login": email, "password": password}, **extra)
