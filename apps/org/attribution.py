"""Who a usage row belongs to: raw identity fields -> (team, person, task) through identity rows.

Resolution is per distinct combination of raw fields (a RawIdentity), so it runs once per combination
and can be redone for all facts of that combination when identities change. Unmatched rows stay
unattributed; they are never dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from apps.org.models import Identity, IdentityKind, Organisation, Person, RawIdentity, Task

# Raw field -> identity kind, in the order their answers win (a person's own key before a shared team).
FIELD_KINDS: tuple[tuple[str, str], ...] = (
    ("user", IdentityKind.USER),
    ("api_key", IdentityKind.API_KEY),
    ("api_key_alias", IdentityKind.API_KEY),
    ("gateway_team", IdentityKind.GATEWAY_TEAM),
    ("gateway_team_alias", IdentityKind.GATEWAY_TEAM),
    ("project", IdentityKind.PROJECT),
    ("tag", IdentityKind.TAG),
)


@dataclass(frozen=True, slots=True)
class Attribution:
    raw_identity_id: int | None
    team_id: int | None
    person_id: int | None
    task_id: int | None


def identity_digest(fields: dict[str, str]) -> str:
    return hashlib.blake2b(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


class Resolver:
    """Resolves raw identity fields for one organisation; loads its identity table once.

    `prepare()` resolves a whole batch's new combinations in a few queries; `resolve()` then answers
    from memory.
    """

    def __init__(self, organisation: Organisation) -> None:
        self.organisation = organisation
        self._identities = {
            (identity.kind, identity.value): identity
            for identity in Identity.objects.filter(organisation=organisation)
        }
        people = list(Person.objects.filter(organisation=organisation))
        self._people_by_email = {person.email.lower(): person for person in people}
        self._team_by_person = {person.pk: person.team_id for person in people}
        self._tasks_by_key = {task.key: task for task in Task.objects.filter(organisation=organisation)}
        self._cache: dict[tuple, Attribution] = {(): Attribution(None, None, None, None)}

    def prepare(self, batch: Iterable[dict[str, str]]) -> None:
        """Store and resolve every combination in the batch not seen before (bulk, chunked)."""
        new: dict[tuple, dict[str, str]] = {}
        for fields in batch:
            key = tuple(sorted(fields.items()))
            if key not in self._cache:
                new[key] = fields
        keys = list(new)
        for start in range(0, len(keys), 500):
            chunk = {identity_digest(new[key]): key for key in keys[start : start + 500]}
            known = dict(
                RawIdentity.objects.filter(organisation=self.organisation, digest__in=chunk).values_list(
                    "digest", "pk"
                )
            )
            missing = sorted(digest for digest in chunk if digest not in known)  # one lock order for all
            if missing:
                RawIdentity.objects.bulk_create(
                    [
                        RawIdentity(organisation=self.organisation, digest=d, fields=new[chunk[d]])
                        for d in missing
                    ],
                    ignore_conflicts=True,  # another run may have stored the same combination meanwhile
                )
                known.update(
                    RawIdentity.objects.filter(
                        organisation=self.organisation, digest__in=missing
                    ).values_list("digest", "pk")
                )
            for digest, key in chunk.items():
                self._cache[key] = self._attribute(known[digest], new[key])

    def resolve(self, fields: dict[str, str]) -> Attribution:
        key = tuple(sorted(fields.items()))
        cached = self._cache.get(key)
        if cached is None:
            self.prepare([fields])
            cached = self._cache[key]
        return cached

    def _attribute(self, raw_identity_id: int, fields: dict[str, str]) -> Attribution:
        team_id = person_id = task_id = None
        for field, kind in FIELD_KINDS:
            value = fields.get(field)
            identity = self._identities.get((kind, value)) if value else None
            if identity is None:
                continue
            person_id = person_id or identity.person_id
            team_id = team_id or identity.team_id
            task_id = task_id or identity.task_id
        user = fields.get("user", "").lower()
        if person_id is None and user in self._people_by_email:
            # A gateway user that is an employee's email needs no identity row.
            person_id = self._people_by_email[user].pk
        if team_id is None and person_id is not None:
            team_id = self._team_by_person.get(person_id)
        if task_id is None and fields.get("tag") in self._tasks_by_key:
            task_id = self._tasks_by_key[fields["tag"]].pk
        return Attribution(raw_identity_id, team_id, person_id, task_id)
