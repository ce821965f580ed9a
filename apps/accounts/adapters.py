"""allauth adapters: no self sign-up, and SSO bound to the organisation that configured the IdP."""

from __future__ import annotations

import logging

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.models import SocialLogin
from django.http import HttpRequest

from apps.accounts.models import Membership

logger = logging.getLogger(__name__)

# OIDC `amr` values (RFC 8176) that prove a second factor at the IdP, unless the app lists its own.
DEFAULT_ACCEPTED_AMR = ("mfa", "otp", "hwk", "swk", "fpt", "face", "sc")


class NoSignupAccountAdapter(DefaultAccountAdapter):
    """Accounts are created by an administrator or the HR import, never by self sign-up."""

    def is_open_for_signup(self, request) -> bool:
        return False


class SSORefused(Exception):
    """An IdP login that SpendWatch does not accept; the message is logged, never shown to the visitor."""


class OrganisationSSOAdapter(DefaultSocialAccountAdapter):
    """Each SocialApp belongs to one organisation: `settings["organisation"]` is that organisation's slug.

    - No sign-up through SSO: the login must exist already (an administrator or the HR import made it).
    - The first SSO login is linked to the member of that organisation whose address the IdP asserts as
      verified; every later one is found by the IdP's stable id (OIDC `sub`, SAML subject-id attribute or
      persistent NameID), so a renamed or reassigned address at the IdP cannot move it to someone else.
      `settings["email_authoritative"]`: the IdP's addresses count as verified (IdPs that send no flag).
    - An IdP can only log in members of its own organisation.
    - `settings["require_mfa"]` (OIDC): the ID token must show a second factor at the IdP, an `amr` value in
      `settings["accepted_amr"]` (default: RFC 8176 MFA methods) or an `acr` in `settings["accepted_acr"]`.
    """

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        provider = sociallogin.account.get_provider(request)
        try:
            organisation_slug = provider.app.settings.get("organisation")
            if not organisation_slug:
                raise SSORefused(f"SocialApp {provider.app.pk} names no organisation")
            check_idp_mfa(provider.app.settings, sociallogin.account.extra_data, provider.id)
            if sociallogin.is_existing:
                if not _is_member(sociallogin.user, organisation_slug):
                    raise SSORefused(f"{sociallogin.user} is not a member of {organisation_slug}")
                return
            trust_all = bool(provider.app.settings.get("email_authoritative"))
            user = _member_by_verified_email(sociallogin, organisation_slug, trust_all)
            if user is None:
                raise SSORefused(f"no member of {organisation_slug} with a verified address from the IdP")
        except SSORefused as refused:
            logger.warning(
                "SSO login refused (%s, uid %s): %s", provider.id, sociallogin.account.uid, refused
            )
            raise ImmediateHttpResponse(render_authentication_error(request, provider)) from None
        sociallogin.connect(request, user)


def check_idp_mfa(app_settings: dict, extra_data: dict, provider_id: str) -> None:
    """Raise SSORefused when the app requires MFA at the IdP and the ID token does not show it."""
    if not app_settings.get("require_mfa"):
        return
    id_token = extra_data.get("id_token") if isinstance(extra_data, dict) else None
    if not isinstance(id_token, dict):
        raise SSORefused(f"{provider_id} requires MFA at the IdP, but no ID token claims were received")
    amr = id_token.get("amr") or []
    if isinstance(amr, str):
        amr = [amr]
    accepted_amr = set(app_settings.get("accepted_amr", DEFAULT_ACCEPTED_AMR))
    accepted_acr = set(app_settings.get("accepted_acr", ()))
    if accepted_amr.intersection(amr) or (id_token.get("acr") in accepted_acr):
        return
    raise SSORefused(f"no second factor at the IdP (acr={id_token.get('acr')!r}, amr={amr!r})")


def _is_member(user, organisation_slug: str) -> bool:
    return Membership.objects.filter(user=user, organisation__slug=organisation_slug).exists()


def _member_by_verified_email(sociallogin: SocialLogin, organisation_slug: str, trust_all: bool):
    emails = {
        a.email.strip().lower() for a in sociallogin.email_addresses if a.email and (a.verified or trust_all)
    }
    if not emails:
        return None
    address = (
        EmailAddress.objects.filter(
            email__in=emails,
            verified=True,
            user__is_active=True,
            user__membership__organisation__slug=organisation_slug,
        )
        .select_related("user")
        .first()
    )
    return address.user if address else None
