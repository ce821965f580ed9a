"""Writes for accounts: who may log in, and in which role they see an organisation."""

from __future__ import annotations

from collections.abc import Iterable

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.accounts.models import Membership, Role
from apps.org.models import Organisation, Person, Team


def membership_create(
    *,
    organisation: Organisation,
    email: str,
    password: str,
    role: Role | str,
    person: Person | None = None,
    managed_teams: Iterable[Team] = (),
) -> Membership:
    """Create or update the login `email` (username = email) with `password`, and its membership.

    Calling it again with the same email updates the password, role, person and managed teams, so a
    seeding command can run it on every start.
    """
    email = email.strip().lower()
    role = Role(role)
    managed_teams = list(managed_teams)
    if person is not None and person.organisation_id != organisation.pk:
        raise ValueError(f"{person} is not in {organisation}")
    if any(team.organisation_id != organisation.pk for team in managed_teams):
        raise ValueError(f"managed teams must belong to {organisation}")
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(username=email, defaults={"email": email})
        user.email = email
        user.is_active = True
        user.set_password(password)
        user.save()
        # allauth logs in by email through its EmailAddress rows; verified, since an admin vouched for it.
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        membership, _ = Membership.objects.update_or_create(
            user=user, defaults={"organisation": organisation, "role": role, "person": person}
        )
        membership.managed_teams.set(managed_teams)
    return membership
