"""Writes for accounts: who may log in, and in which role they see an organisation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence

from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import KeyScope, MachineKey, Membership, Role
from apps.audit.services import audit_record
from apps.org.models import Organisation, Person, Team


def membership_create(
    *,
    organisation: Organisation,
    email: str,
    password: str,
    role: Role | str,
    person: Person | None = None,
    managed_teams: Iterable[Team] = (),
    actor=None,
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
        existing = Membership.objects.filter(user=user).first()
        before = _membership_snapshot(existing) if existing else None
        membership, _ = Membership.objects.update_or_create(
            user=user, defaults={"organisation": organisation, "role": role, "person": person}
        )
        membership.managed_teams.set(managed_teams)
        after = _membership_snapshot(membership)
        if after != before:
            audit_record(
                organisation=organisation,
                actor=actor,
                action="membership.updated" if existing else "membership.created",
                target=membership,
                before=before,
                after=after,
            )
    return membership


def _membership_snapshot(membership: Membership) -> dict:
    return {
        "login": membership.user.email,
        "organisation": membership.organisation_id,
        "role": membership.role,
        "person": membership.person_id,
        "managed_teams": sorted(membership.managed_teams.values_list("pk", flat=True)),
    }


class KeyScopeRefused(PermissionError):
    """A key would carry a scope its creator does not hold."""


# Every scope acts for the whole organisation (push its usage, check anyone's budget, read all its spend),
# so only the organisation-wide roles hold them; a manager sees a few teams and can grant nothing.
SCOPES_BY_ROLE = {
    Role.CIO: frozenset(KeyScope.values),
    Role.FINOPS: frozenset(KeyScope.values),
    Role.MANAGER: frozenset(),
    Role.MEMBER: frozenset(),
}


def key_scopes_held(user, organisation: Organisation) -> frozenset[str]:
    """The key scopes this user holds in this organisation (none outside their own organisation)."""
    membership = Membership.objects.filter(user_id=user.pk, organisation=organisation).first()
    return SCOPES_BY_ROLE.get(membership.role, frozenset()) if membership else frozenset()


def machine_key_create(
    *, organisation: Organisation, name: str, scopes: Sequence[str], created_by=None
) -> tuple[MachineKey, str]:
    """Create a machine key; returns it with the full key text, which is never stored or shown again.

    `created_by` (a user; None for the CLI, which is the operator's) may only hand out scopes they hold
    themselves: KeyScopeRefused otherwise, and the attempt is audited.
    """
    unknown = set(scopes) - set(KeyScope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    if created_by is not None:
        beyond = set(scopes) - key_scopes_held(created_by, organisation)
        if beyond:
            audit_record(
                organisation=organisation,
                actor=created_by,
                action="machine_key.refused",
                object_type="accounts.machinekey",
                after={"name": name, "scopes": sorted(scopes), "not_held": sorted(beyond)},
            )
            raise KeyScopeRefused(f"you cannot grant scopes you do not hold: {', '.join(sorted(beyond))}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = MachineKey.objects.create(
        organisation=organisation,
        name=name,
        prefix=prefix,
        secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        scopes=list(scopes),
        created_by=created_by,
    )
    return key, f"sw_{prefix}_{secret}"


def access_end(*, user_id: int, reason: str, actor=None) -> tuple[int, int]:
    """End every session of a user and revoke the machine keys they created: (sessions, keys).

    Called when the login is deactivated, its membership removed, or its person leaves. Only sessions
    recorded at login (allauth usersessions) can be found; any other one of an inactive user is refused
    by Django's backend on its next request anyway.
    """
    ended = 0
    for user_session in UserSession.objects.filter(user_id=user_id):
        user_session.end()
        ended += 1
    with transaction.atomic():
        keys = list(
            MachineKey.objects.select_for_update().filter(created_by_id=user_id, revoked_at__isnull=True)
        )
        now = timezone.now()
        for key in keys:
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])
            audit_record(
                organisation=key.organisation_id,
                actor=actor,
                action="machine_key.revoked",
                target=key,
                before={"revoked_at": None},
                after={"revoked_at": now.isoformat(), "reason": reason},
            )
    return ended, len(keys)


def machine_key_authenticate(text: str) -> MachineKey | None:
    """The active key for a full key text, or None (constant-time comparison of the hash)."""
    parts = text.split("_", 2)
    if len(parts) != 3 or parts[0] != "sw":
        return None
    _, prefix, secret = parts
    key = (
        MachineKey.objects.filter(prefix=prefix, revoked_at__isnull=True)
        # Keys of a creator who was deactivated, or whose person left (a bulk update sends no signal
        # that would revoke them), stop at once.
        .exclude(created_by__is_active=False)
        .exclude(created_by__membership__person__is_active=False)
        .select_related("organisation")
        .first()
    )
    if key is None:
        return None
    if not hmac.compare_digest(key.secret_hash, hashlib.sha256(secret.encode()).hexdigest()):
        return None
    return key
