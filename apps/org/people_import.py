"""People and the team tree from an HR export (CSV): parse, plan (the preview), apply.

Columns (header names without case; spaces, dots and dashes read as underscores):

    email               required, the key: a person is matched by it, without case
    name                required
    team                required column, may be empty: a path from the top, "Engineering/Platform"
    manager_email       optional: the person's manager, who must be in the file or stay active
    cost_centre         optional (cost_center also accepted)
    annual_loaded_cost  optional, an amount such as 182000 or 182000.50 (the organisation's currency)

Applying the same file twice changes nothing the second time. In a full list, people of the
organisation who are missing are deactivated (never deleted: their usage stays theirs). Managers follow
from the file: a person with reports who has a login manages their reports' teams.

A bad row is reported with its line and field and left out; the good rows are applied. A person whose
row is bad is not deactivated for being "missing"; if a bad row's email cannot be read at all, nobody
is deactivated by that import.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils.text import slugify

from apps.accounts.models import ORGANISATION_WIDE_ROLES, Membership, Role
from apps.audit.services import audit_record
from apps.org.models import Organisation, Person, Team

COLUMNS = {
    "email": "email",
    "work_email": "email",
    "name": "name",
    "full_name": "name",
    "team": "team",
    "team_path": "team",
    "manager_email": "manager_email",
    "manager": "manager_email",
    "cost_centre": "cost_centre",
    "cost_center": "cost_centre",
    "annual_loaded_cost": "annual_loaded_cost",
    "loaded_cost": "annual_loaded_cost",
}
REQUIRED = ("email", "name", "team")
MAX_BYTES = 5 * 1024 * 1024
_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")

TeamKey = int | tuple[str, ...]  # an existing team's id, or the path of a team the import creates


class PeopleFileError(ValueError):
    """The file as a whole cannot be read (empty, not text, a required column missing)."""


class StalePreview(Exception):
    """What applying would change is no longer what the preview showed."""


@dataclass(frozen=True, slots=True)
class RowError:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}, {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class HRRow:
    line: int
    email: str
    name: str
    team_path: tuple[str, ...]
    manager_email: str | None
    cost_centre: str
    annual_loaded_cost: Decimal | None


def decode(data: bytes, file_name: str) -> str:
    if len(data) > MAX_BYTES:
        raise PeopleFileError(f"{file_name}: larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PeopleFileError(f"{file_name}: not UTF-8 text (byte {error.start})") from None


def _header_key(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", name.strip().lstrip("\ufeff").lower())


@dataclass(slots=True)
class ParsedFile:
    rows: list[HRRow]
    errors: list[RowError]
    rejected_emails: set[str]  # readable emails of rejected rows: those people are not "missing"
    unreadable_lines: list[int]  # rejected rows whose email cannot be read


def parse_people_csv(content: str, file_name: str) -> ParsedFile:
    """Good rows and row errors; raises PeopleFileError when the header is unusable."""
    reader = csv.reader(io.StringIO(content))
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise PeopleFileError(f"{file_name}: the file is empty (expected a header line)")
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        column = COLUMNS.get(_header_key(name))
        if column is None:
            continue  # HR exports carry many other columns
        if column in positions:
            raise PeopleFileError(f"{file_name} line 1: column {column} appears twice")
        positions[column] = position
    missing = [column for column in REQUIRED if column not in positions]
    if missing:
        raise PeopleFileError(f"{file_name} line 1: missing column(s) {', '.join(missing)}")

    parsed = ParsedFile(rows=[], errors=[], rejected_emails=set(), unreadable_lines=[])
    first_line: dict[str, int] = {}
    line = reader.line_num + 1
    for record in reader:
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        cells = {column: record[p].strip() if p < len(record) else "" for column, p in positions.items()}
        errors: list[tuple[str, str]] = []
        if len(record) > len(header):
            errors.append(("(row)", f"has {len(record)} cells, the header has {len(header)}"))
        row = _read_row(cells, start, first_line, errors)
        email = cells["email"].lower()
        readable = bool(email) and _is_email(email)
        if readable and email not in first_line:
            first_line[email] = start
        if errors:
            parsed.errors.extend(RowError(file_name, start, column, message) for column, message in errors)
            if readable:
                parsed.rejected_emails.add(email)
            else:
                parsed.unreadable_lines.append(start)
            continue
        parsed.rows.append(row)
    return parsed


def _read_row(cells: dict[str, str], line: int, first_line: dict[str, int], errors: list) -> HRRow:
    """One record's values; problems are appended to `errors` as (column, message)."""
    email = cells["email"].lower()
    if not email:
        errors.append(("email", "is empty"))
    elif not _is_email(email):
        errors.append(("email", f"{email!r} is not an email address"))
    elif email in first_line:
        errors.append(("email", f"{email} appears again (first on line {first_line[email]})"))
    name = cells["name"]
    if not name:
        errors.append(("name", "is empty"))
    elif len(name) > 200:
        errors.append(("name", "is longer than 200 characters"))
    team_path: tuple[str, ...] = ()
    if cells["team"]:
        team_path = tuple(part.strip() for part in cells["team"].split("/"))
        if any(not part for part in team_path):
            errors.append(("team", f"{cells['team']!r} has an empty part (write Engineering/Platform)"))
        elif any(len(part) > 200 for part in team_path):
            errors.append(("team", "a team name is longer than 200 characters"))
    manager_email = cells.get("manager_email", "").lower() or None
    if manager_email and not _is_email(manager_email):
        errors.append(("manager_email", f"{manager_email!r} is not an email address"))
    elif manager_email and manager_email == email:
        errors.append(("manager_email", "is the person themself"))
    cost_centre = cells.get("cost_centre", "")
    if len(cost_centre) > 100:
        errors.append(("cost_centre", "is longer than 100 characters"))
    amount_text = cells.get("annual_loaded_cost", "")
    amount = None
    if amount_text:
        if _AMOUNT.fullmatch(amount_text):
            amount = Decimal(amount_text)
        else:
            errors.append(
                ("annual_loaded_cost", f"{amount_text!r} is not an amount (digits, optional . and cents)")
            )
    return HRRow(line, email, name, team_path, manager_email, cost_centre, amount)


def _is_email(text: str) -> bool:
    try:
        validate_email(text)
    except ValidationError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    before: str
    after: str


@dataclass(slots=True)
class PersonChange:
    email: str
    line: int
    changes: list[FieldChange]


@dataclass(frozen=True, slots=True)
class ManagerChange:
    email: str
    before: str
    after: str


@dataclass(slots=True)
class MembershipChange:
    membership_id: int
    login: str
    role_before: str
    role_after: str
    teams_before: list[str]
    teams_after: list[str]
    team_keys: list[TeamKey]


@dataclass(slots=True)
class ImportPlan:
    """What applying the file changes. Counts: each existing person with any changed field (a manager,
    a reactivation, a name...) counts once in changed_people; manager_changes and reactivated are views
    of those; new people are not counted there."""

    file_name: str
    full_list: bool
    rows: list[HRRow]
    errors: list[RowError]
    new_teams: list[tuple[str, ...]] = field(default_factory=list)
    new_people: list[str] = field(default_factory=list)
    changed_people: list[PersonChange] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    manager_changes: list[ManagerChange] = field(default_factory=list)
    membership_changes: list[MembershipChange] = field(default_factory=list)
    unchanged: int = 0
    deactivation_withheld: str = ""
    # Internal: the team of each row (existing id or new path).
    team_of: dict[str, TeamKey | None] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(
            self.new_teams
            or self.new_people
            or self.changed_people
            or self.deactivated
            or self.membership_changes
        )

    def summary(self) -> dict:
        return {
            "rows": len(self.rows),
            "errors": len(self.errors),
            "new_teams": len(self.new_teams),
            "new_people": len(self.new_people),
            "changed_people": len(self.changed_people),
            "reactivated": len(self.reactivated),
            "deactivated": len(self.deactivated),
            "manager_changes": len(self.manager_changes),
            "membership_changes": len(self.membership_changes),
            "unchanged": self.unchanged,
        }

    @property
    def fingerprint(self) -> str:
        content = {
            "teams": ["/".join(path) for path in self.new_teams],
            "new": self.new_people,
            "changed": [
                [c.email, [[f.field, f.before, f.after] for f in c.changes]] for c in self.changed_people
            ],
            "deactivated": self.deactivated,
            "memberships": [[m.membership_id, m.role_after, m.teams_after] for m in self.membership_changes],
        }
        return hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


class _Teams:
    """The organisation's team tree by name path (names match without case)."""

    def __init__(self, organisation: Organisation) -> None:
        self.rows = list(
            Team.objects.filter(organisation=organisation).values_list("pk", "parent_id", "name")
        )
        self.by_parent_and_name: dict[tuple[int | None, str], int] = {}
        for pk, parent_id, name in sorted(self.rows):
            self.by_parent_and_name.setdefault((parent_id, name.lower()), pk)
        self.parent = {pk: parent_id for pk, parent_id, _ in self.rows}
        self.name = {pk: name for pk, _, name in self.rows}

    def find(self, path: tuple[str, ...]) -> TeamKey:
        """The existing team at `path`, or the path itself when (part of) it does not exist yet."""
        parent: int | None = None
        for part in path:
            found = self.by_parent_and_name.get((parent, part.lower()))
            if found is None:
                return path
            parent = found
        return parent  # type: ignore[return-value]

    def path_text(self, key: TeamKey | None) -> str:
        if key is None:
            return ""
        if isinstance(key, tuple):
            return "/".join(key)
        parts: list[str] = []
        current: int | None = key
        while current is not None and len(parts) < 100:
            parts.append(self.name.get(current, f"#{current}"))
            current = self.parent.get(current)
        return "/".join(reversed(parts))

    def missing_prefixes(self, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The prefixes of `path` (parents first) that do not exist yet, spelled as the existing teams are."""
        parent: int | None = None
        spelled: list[str] = []
        for depth, part in enumerate(path):
            found = self.by_parent_and_name.get((parent, part.lower()))
            if found is None:
                return [(*spelled, *path[depth : end + 1]) for end in range(depth, len(path))]
            spelled.append(self.name[found])
            parent = found
        return []


def _money_text(amount: Decimal | None) -> str:
    return "" if amount is None else f"{amount:.2f}"


def plan_import(organisation: Organisation, content: str, file_name: str, *, full_list: bool) -> ImportPlan:
    """Read the file and the organisation; say what applying would change (writes nothing)."""
    parsed = parse_people_csv(content, file_name)
    rows, errors = parsed.rows, parsed.errors
    teams = _Teams(organisation)
    people = {person.email.lower(): person for person in Person.objects.filter(organisation=organisation)}
    emails_by_id = {person.pk: email for email, person in people.items()}
    # People named by a bad row are not "missing"; a bad row without a readable email could be anyone,
    # so it stops deactivation altogether.
    protected = set(parsed.rejected_emails)
    unreadable_lines = parsed.unreadable_lines

    # A manager must be a good row of this file, or an existing person who stays active. Dropping a
    # row can orphan rows managed by it, so repeat until nothing more is dropped.
    while True:
        in_file = {row.email for row in rows}
        staying = in_file | (
            {email for email, p in people.items() if p.is_active} if not full_list else set()
        )
        staying |= {email for email in protected if email in people and people[email].is_active}
        bad = [row for row in rows if row.manager_email and row.manager_email not in staying]
        if not bad:
            break
        for row in bad:
            errors.append(
                RowError(
                    file_name, row.line, "manager_email", f"{row.manager_email} is not a person of this file"
                )
                if full_list
                else RowError(
                    file_name, row.line, "manager_email", f"{row.manager_email} is no active person here"
                )
            )
            protected.add(row.email)
        rows = [row for row in rows if row not in bad]
    errors.sort(key=lambda error: (error.line, error.field))

    plan = ImportPlan(file_name=file_name, full_list=full_list, rows=rows, errors=errors)
    # New teams match without case too: the first spelling in the file names the team.
    spelling: dict[tuple[str, ...], tuple[str, ...]] = {}
    for row in rows:
        for prefix in teams.missing_prefixes(row.team_path):
            lower = tuple(part.lower() for part in prefix)
            parent = spelling.get(lower[:-1], ())
            spelling.setdefault(lower, (*parent, prefix[-1]) if parent else prefix)
        key = teams.find(row.team_path) if row.team_path else None
        plan.team_of[row.email] = spelling[tuple(p.lower() for p in key)] if isinstance(key, tuple) else key
    plan.new_teams = sorted(spelling.values(), key=lambda path: (len(path), [part.lower() for part in path]))

    for row in rows:
        existing = people.get(row.email)
        if existing is None:
            plan.new_people.append(row.email)
            continue
        old_manager = emails_by_id.get(existing.manager_id, "") if existing.manager_id else ""
        old_team = teams.path_text(existing.team_id)
        new_team = teams.path_text(plan.team_of[row.email])
        changes = [
            FieldChange(name, before, after)
            for name, before, after in (
                ("name", existing.name, row.name),
                ("team", old_team, new_team),
                ("manager", old_manager, row.manager_email or ""),
                ("cost_centre", existing.cost_centre, row.cost_centre),
                ("annual_loaded_cost", _money_text(existing.annual_loaded_cost), _money_text(row.annual_loaded_cost)),
                ("active", "no" if not existing.is_active else "yes", "yes"),
            )
            if before != after and not (name == "team" and existing.team_id == plan.team_of[row.email])
        ]  # fmt: skip
        if not changes:
            plan.unchanged += 1
            continue
        plan.changed_people.append(PersonChange(row.email, row.line, changes))
        if not existing.is_active:
            plan.reactivated.append(row.email)
        if old_manager != (row.manager_email or ""):
            plan.manager_changes.append(ManagerChange(row.email, old_manager, row.manager_email or ""))

    if full_list:
        if unreadable_lines:
            plan.deactivation_withheld = (
                f"nobody is deactivated: line(s) {', '.join(map(str, unreadable_lines))} have no readable email, "
                "so who is missing is not known"
            )
        else:
            in_file = {row.email for row in rows}
            plan.deactivated = sorted(
                email
                for email, person in people.items()
                if person.is_active and email not in in_file and email not in protected
            )
    plan.membership_changes = _membership_changes(organisation, plan, people, teams)
    return plan


def _membership_changes(
    organisation: Organisation, plan: ImportPlan, people: dict[str, Person], teams: _Teams
) -> list[MembershipChange]:
    """Logins whose managed teams (or manager/member role) follow from the file's reporting lines."""
    emails_by_id = {person.pk: email for email, person in people.items()}
    # Everyone's state after applying: the file for its rows, the database for the rest.
    final: dict[str, tuple[TeamKey | None, str | None, bool]] = {
        email: (person.team_id, emails_by_id.get(person.manager_id) if person.manager_id else None, person.is_active)
        for email, person in people.items()
    }  # fmt: skip
    for row in plan.rows:
        final[row.email] = (plan.team_of[row.email], row.manager_email, True)
    for email in plan.deactivated:
        team_key, manager, _ = final[email]
        final[email] = (team_key, manager, False)
    report_teams: dict[str, set[TeamKey]] = defaultdict(set)
    for team_key, manager, active in final.values():
        if manager and active and team_key is not None:
            report_teams[manager].add(team_key)

    changes: list[MembershipChange] = []
    memberships = (
        Membership.objects.filter(organisation=organisation)
        .select_related("user", "person")
        .prefetch_related("managed_teams")
    )
    for membership in memberships.order_by("pk"):
        if membership.role in ORGANISATION_WIDE_ROLES:
            continue  # they see the whole organisation; the file does not change what they are
        email = (membership.person.email if membership.person else membership.user.email or "").lower()
        if email not in final:
            continue  # a login the HR file does not know: left as it is
        active = final[email][2]
        derived = report_teams.get(email, set()) if active else set()
        role_after = Role.MANAGER if derived else Role.MEMBER
        current = {team.pk for team in membership.managed_teams.all()}
        if role_after == membership.role and current == derived:
            continue
        changes.append(
            MembershipChange(
                membership_id=membership.pk,
                login=membership.user.email or membership.user.get_username(),
                role_before=membership.role,
                role_after=role_after,
                teams_before=sorted(teams.path_text(key) for key in current),
                teams_after=sorted(teams.path_text(key) for key in derived),
                team_keys=sorted(derived, key=lambda key: teams.path_text(key)),
            )
        )
    return changes


def _snapshot(person: Person, team_paths: dict[int, str], emails: dict[int, str]) -> dict:
    return {
        "email": person.email,
        "name": person.name,
        "team": team_paths.get(person.team_id, "") if person.team_id else "",
        "manager": emails.get(person.manager_id, "") if person.manager_id else "",
        "cost_centre": person.cost_centre,
        "annual_loaded_cost": _money_text(person.annual_loaded_cost),
        "is_active": person.is_active,
    }


def _unique_slug(path: tuple[str, ...], taken: set[str]) -> str:
    base = slugify(path[-1])[:50] or "team"
    candidates = [base, slugify("-".join(path))[:50] or base]
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    number = 2
    while f"{base[:45]}-{number}" in taken:
        number += 1
    return f"{base[:45]}-{number}"


def apply_import(
    organisation: Organisation,
    content: str,
    file_name: str,
    *,
    full_list: bool,
    actor,
    request=None,
    expected_fingerprint: str | None = None,
) -> ImportPlan:
    """Apply the file in one transaction, one audit row per change; returns the plan it applied.

    With `expected_fingerprint` (from the preview), raises StalePreview when the changes differ from
    what was shown.
    """
    with transaction.atomic():
        # One import at a time per organisation: the plan is read and applied under this lock.
        Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
        plan = plan_import(organisation, content, file_name, full_list=full_list)
        if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
            raise StalePreview("the people or teams changed since the preview")
        if not plan.has_changes:
            return plan
        people = {person.email.lower(): person for person in Person.objects.filter(organisation=organisation)}
        teams = _Teams(organisation)
        team_paths = {pk: teams.path_text(pk) for pk in teams.name}
        emails = {person.pk: email for email, person in people.items()}
        before = {email: _snapshot(person, team_paths, emails) for email, person in people.items()}

        def audit(action: str, target, old: dict | None, new: dict | None) -> None:
            audit_record(
                organisation=organisation, actor=actor, action=action, target=target,
                before=old, after=new, request=request,
            )  # fmt: skip

        created: dict[tuple[str, ...], int] = {}
        slugs = set(Team.objects.filter(organisation=organisation).values_list("slug", flat=True))
        for path in plan.new_teams:
            parent_id = created.get(path[:-1]) if len(path) > 1 and path[:-1] in created else None
            if len(path) > 1 and parent_id is None:
                parent_id = teams.find(path[:-1])  # an existing parent
            slug = _unique_slug(path, slugs)
            slugs.add(slug)
            team = Team.objects.create(
                organisation=organisation, name=path[-1], slug=slug, parent_id=parent_id
            )
            created[path] = team.pk
            team_paths[team.pk] = "/".join(path)
            audit("team.created", team, None, {"name": team.name, "slug": slug, "path": "/".join(path)})

        def team_id(key: TeamKey | None) -> int | None:
            return created[key] if isinstance(key, tuple) else key

        changed = {change.email for change in plan.changed_people}
        for row in plan.rows:
            person = people.get(row.email)
            if person is None:
                person = Person(organisation=organisation, email=row.email)
                people[row.email] = person
            elif row.email not in changed:
                continue
            person.name = row.name
            person.team_id = team_id(plan.team_of[row.email])
            person.cost_centre = row.cost_centre
            person.annual_loaded_cost = row.annual_loaded_cost
            person.is_active = True
            person.save()
            emails[person.pk] = row.email
        new_people = set(plan.new_people)
        deactivated = set(plan.deactivated)
        for row in plan.rows:
            if row.email in changed or row.email in new_people:
                manager = people.get(row.manager_email) if row.manager_email else None
                Person.objects.filter(pk=people[row.email].pk).update(manager=manager)
                people[row.email].manager_id = manager.pk if manager else None
        for email in plan.deactivated:
            Person.objects.filter(pk=people[email].pk).update(is_active=False)
            people[email].is_active = False
        for email in [*plan.new_people, *(change.email for change in plan.changed_people), *plan.deactivated]:
            person = people[email]
            action = (
                "person.created"
                if email in new_people
                else "person.deactivated"
                if email in deactivated
                else "person.updated"
            )
            audit(action, person, before.get(email), _snapshot(person, team_paths, emails))

        for change in plan.membership_changes:
            membership = Membership.objects.get(pk=change.membership_id)
            membership.role = change.role_after
            membership.save(update_fields=["role"])
            membership.managed_teams.set([team_id(key) for key in change.team_keys])
            audit(
                "membership.updated",
                membership,
                {"role": change.role_before, "managed_teams": change.teams_before},
                {"role": change.role_after, "managed_teams": change.teams_after},
            )
        Organisation.objects.filter(pk=organisation.pk).update(
            attribution_version=F("attribution_version") + 1
        )
    return plan
