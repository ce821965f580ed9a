"""Who a usage row belongs to: raw identity fields -> (team, person, task).

Resolution is per distinct combination of raw fields (a RawIdentity), so it runs once per combination
and is redone for all facts of that combination when identities, rules or people change
(apps.org.reattribution). Each of team, person and task is taken from the first step that supplies it:

1. exact Identity rows, most specific field first (a person's own user or key before a shared project);
2. active Rules, in their order (the first matching rule that names a team gives the team, ...);
3. a `user` or `email` value that is a person's email address gives the person; a `tag` that is a
   task's key gives the task;
4. the person's team, when nothing gave a team.

Unmatched rows stay unattributed; they are never dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from apps.org.models import Identity, IdentityKind, Organisation, Person, RawIdentity, Rule, Task

# Exact identities are looked up in this order; kinds not listed (tag keys of cloud sources) follow,
# alphabetically. A person's own identity first, then keys, then shared team-level containers.
FIELD_PRIORITY: tuple[str, ...] = (
    IdentityKind.USER,
    IdentityKind.EMAIL,
    IdentityKind.ARN,
    IdentityKind.SERVICE_ACCOUNT,
    IdentityKind.API_KEY,
    IdentityKind.API_KEY_ALIAS,
    IdentityKind.GATEWAY_TEAM,
    IdentityKind.GATEWAY_TEAM_ALIAS,
    IdentityKind.TEAM,
    IdentityKind.PROJECT,
    IdentityKind.WORKSPACE,
    IdentityKind.DEPLOYMENT,
    IdentityKind.RESOURCE,
    IdentityKind.RESOURCE_GROUP,
    IdentityKind.SUBSCRIPTION,
    IdentityKind.ACCOUNT,
    IdentityKind.END_USER,
    IdentityKind.TAG,
)
_PRIORITY = {kind: position for position, kind in enumerate(FIELD_PRIORITY)}
# An identity row of the general kind also answers for these fields (how rows were written before
# the kinds were split): a key's alias under api_key, a gateway team's alias under gateway_team, ...
ALSO_MATCHES: dict[str, str] = {
    IdentityKind.API_KEY_ALIAS: IdentityKind.API_KEY,
    IdentityKind.GATEWAY_TEAM_ALIAS: IdentityKind.GATEWAY_TEAM,
    IdentityKind.WORKSPACE: IdentityKind.PROJECT,
    IdentityKind.EMAIL: IdentityKind.USER,
}
EMAIL_FIELDS = (IdentityKind.USER, IdentityKind.EMAIL)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a row belongs to; any part may be None (unattributed in that dimension)."""

    team_id: int | None = None
    person_id: int | None = None
    task_id: int | None = None


UNATTRIBUTED = Owner()


@dataclass(frozen=True, slots=True)
class Attribution:
    raw_identity_id: int | None
    team_id: int | None
    person_id: int | None
    task_id: int | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    pk: int | None
    source_id: int | None
    field: str
    pattern: re.Pattern
    target: Owner


def identity_digest(fields: dict[str, str]) -> str:
    return hashlib.blake2b(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def compile_pattern(pattern: str) -> re.Pattern:
    """The rule's regular expression; raises ValueError with the reason when it is not one."""
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a regular expression: {error}") from None


def _field_order(field: str) -> tuple[int, str]:
    return (_PRIORITY.get(field, len(_PRIORITY)), field)


class RuleBook:
    """Everything attribution reads for one organisation, loaded once; `attribute()` is pure.

    `load()` reads the current identities and rules; a preview passes the candidate lists instead
    (unsaved or edited model instances), so the preview and the job run the same code.
    """

    def __init__(
        self,
        *,
        identities: Iterable[Identity],
        rules: Iterable[Rule],
        people: Iterable[tuple[int, str, int | None]],
        task_keys: dict[str, int],
    ) -> None:
        self.identities: dict[tuple[str, str], Owner] = {
            (identity.kind, identity.value): Owner(identity.team_id, identity.person_id, identity.task_id)
            for identity in identities
        }
        ordered = sorted(
            (rule for rule in rules if rule.is_active),
            key=lambda rule: (rule.order, rule.pk is None, rule.pk or 0),
        )
        self.rules = [
            CompiledRule(
                rule.pk,
                rule.source_id,
                rule.field,
                compile_pattern(rule.pattern),
                Owner(rule.team_id, rule.person_id, rule.task_id),
            )
            for rule in ordered
        ]
        people = list(people)
        # Deactivated people included: their past usage stays theirs.
        self.people_by_email = {email.lower(): pk for pk, email, _ in people}
        self.team_by_person = {pk: team_id for pk, _, team_id in people}
        self.task_keys = task_keys
        self.has_source_rules = any(rule.source_id is not None for rule in self.rules)

    @classmethod
    def load(
        cls,
        organisation_id: int,
        *,
        identities: Iterable[Identity] | None = None,
        rules: Iterable[Rule] | None = None,
    ) -> RuleBook:
        if identities is None:
            identities = Identity.objects.filter(organisation_id=organisation_id)
        if rules is None:
            rules = Rule.objects.filter(organisation_id=organisation_id, is_active=True)
        return cls(
            identities=identities,
            rules=rules,
            people=Person.objects.filter(organisation_id=organisation_id).values_list(
                "pk", "email", "team_id"
            ),
            task_keys=dict(Task.objects.filter(organisation_id=organisation_id).values_list("key", "pk")),
        )

    def attribute(self, fields: dict[str, str], source_id: int | None = None) -> Owner:
        """The owner of rows with these raw fields. Rules limited to a source apply only when it is given."""
        team_id = person_id = task_id = None

        def take(owner: Owner) -> None:
            nonlocal team_id, person_id, task_id
            team_id = team_id or owner.team_id
            person_id = person_id or owner.person_id
            task_id = task_id or owner.task_id

        for field in sorted(fields, key=_field_order):
            value = fields[field]
            found = self.identities.get((field, value))
            if found is None and field in ALSO_MATCHES:
                found = self.identities.get((ALSO_MATCHES[field], value))
            if found is not None:
                take(found)
        for rule in self.rules:
            if team_id and person_id and task_id:
                break
            if rule.source_id is not None and rule.source_id != source_id:
                continue
            value = fields.get(rule.field)
            if value is not None and rule.pattern.search(value):
                take(rule.target)
        if person_id is None:
            for field in EMAIL_FIELDS:
                person_id = self.people_by_email.get(fields.get(field, "").lower())
                if person_id is not None:
                    break
        if task_id is None and IdentityKind.TAG in fields:
            task_id = self.task_keys.get(fields[IdentityKind.TAG])
        if team_id is None and person_id is not None:
            team_id = self.team_by_person.get(person_id)
        return Owner(team_id, person_id, task_id)


class Resolver:
    """Resolves raw identity fields for one organisation (the ingestion pipeline's entry point).

    `prepare()` stores and resolves a whole batch's new combinations in a few queries; `resolve()` then
    answers from memory. When identities, rules or people change meanwhile (the organisation's
    attribution_version moves), the next `prepare()` reloads them, so a long ingestion does not keep
    attributing with what was true when it started.

    Rules limited to one data source apply only when the resolver is given that source (`source_id`);
    without it they wait for the next re-attribution run.
    """

    def __init__(self, organisation: Organisation, *, source_id: int | None = None) -> None:
        self.organisation = organisation
        self.source_id = source_id
        self._load(organisation.attribution_version)

    def _load(self, version: int) -> None:
        self.version = version
        self.book = RuleBook.load(self.organisation.pk)
        self._cache: dict[tuple, Attribution] = {(): Attribution(None, None, None, None)}

    def _reload_if_changed(self) -> None:
        version = (
            Organisation.objects.filter(pk=self.organisation.pk)
            .values_list("attribution_version", flat=True)
            .first()
        )
        if version is not None and version != self.version:
            self._load(version)

    def prepare(self, batch: Iterable[dict[str, str]]) -> None:
        """Store and resolve every combination in the batch not seen before (bulk, chunked)."""
        self._reload_if_changed()
        new: dict[tuple, dict[str, str]] = {}
        for fields in batch:
            key = tuple(sorted(fields.items()))
            if key not in self._cache:
                new[key] = fields
        # All of a batch's inserts in digest order, across chunks too: two loads storing overlapping
        # combinations then take their locks in the same order and queue instead of deadlocking.
        by_digest = sorted((identity_digest(fields), key) for key, fields in new.items())
        for start in range(0, len(by_digest), 500):
            chunk = dict(by_digest[start : start + 500])
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
                owner = self.book.attribute(new[key], self.source_id)
                self._cache[key] = Attribution(known[digest], owner.team_id, owner.person_id, owner.task_id)

    def resolve(self, fields: dict[str, str]) -> Attribution:
        key = tuple(sorted(fields.items()))
        cached = self._cache.get(key)
        if cached is None:
            self.prepare([fields])
            cached = self._cache[key]
        return cached
