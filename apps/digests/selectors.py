"""Reads for digests: who gets one, and what each says.

Every figure comes from the selectors the dashboards use (apps.usage, apps.budgets, apps.overuse), called
with the recipient's own viewer, so a digest holds nothing its recipient could not open on the dashboards;
a manager's digest holds nothing of another team (TESTPLAN F11). Spend is read from the daily rollups;
the one read of the fact table (the week's overuse report) is made once per organisation and week and then
narrowed to each recipient (`OrganisationWeek`), so a run for every team costs one week's scan (DASH-6).

Sections, and the app each waits for while it is not installed:
- headline, teams, biggest movers, top tasks, own usage, weekly trend: apps.usage (always present);
- budgets (period to date vs limit and forecast) and people above their limit: apps.budgets;
- savings opportunities and non-work use: apps.overuse;
- ROI highlights (outcomes against AI spend over the last 12 weeks, CIO/FinOps and managers): apps.metrics.
Without the app a digest leaves the section out and says so in `Digest.notes`.

Privacy rules on top of scope:
- no prompt text: nothing here reads excerpts or prompt hashes, only labels' aggregates;
- minimum group size (SPENDWATCH_DIGEST_MIN_GROUP_SIZE): a figure about a group of people (a team's or
  a task's spend, non-work use, people above a limit) is shown only when at least that many distinct
  people are behind it; groups with no identified person (shared keys) reveal no one and are shown;
- names of people above a limit only to their own line manager (Person.manager); everyone else gets a
  count. CIO/FinOps digests name no person at all: aggregates only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property

from django.apps import apps
from django.conf import settings
from django.db.models import Count
from django.urls import reverse

from apps.accounts.models import Membership, Role
from apps.accounts.scoping import Viewer, organisation_viewer, scope_usage, viewer_for_user
from apps.digests import text
from apps.digests.models import DigestPreference
from apps.digests.tokens import unsubscribe_token
from apps.digests.weeks import IsoWeek
from apps.org.models import Organisation, Person
from apps.usage.models import DailyRollup
from apps.usage.selectors import SpendGroup, daily_spend, spend

SUBSCRIBED_BY_DEFAULT = frozenset({Role.CIO, Role.FINOPS, Role.MANAGER})  # members opt in
TREND_WEEKS = 8
TOP_LINES = 5
ROLE_LABELS = {Role.CIO: "CIO", Role.FINOPS: "FinOps", Role.MANAGER: "manager", Role.MEMBER: "member"}


# --- who receives a digest ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    email: str
    role: str
    viewer: Viewer
    person_id: int | None
    subscribed: bool

    @property
    def kind(self) -> str:
        """Which digest: "organisation" (CIO, FinOps), "manager" or "member"."""
        if self.viewer.sees_organisation:
            return "organisation"
        return "manager" if self.role == Role.MANAGER else "member"


def _subscribed(role: str, choice: bool | None) -> bool:
    return choice if choice is not None else role in SUBSCRIBED_BY_DEFAULT


def _recipient(membership: Membership, choice: bool | None) -> Recipient | None:
    """None for someone a digest would have nothing to say to (a manager of no team, a member who is
    no person of the organisation)."""
    viewer = viewer_for_user(membership.user)
    if viewer.role == Role.MANAGER and not viewer.team_ids:
        return None
    if viewer.role == Role.MEMBER and viewer.person_id is None:
        return None
    return Recipient(
        user_id=membership.user_id,
        email=membership.user.email,
        role=membership.role,
        viewer=viewer,
        person_id=membership.person_id,
        subscribed=_subscribed(membership.role, choice),
    )


def recipients(organisation_id: int) -> list[Recipient]:
    """Everyone in the organisation who gets this week's digest, by email address."""
    memberships = (
        Membership.objects.filter(organisation_id=organisation_id, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("user__email", "pk")
    )
    choices = dict(
        DigestPreference.objects.filter(user__membership__organisation_id=organisation_id).values_list(
            "user_id", "subscribed"
        )
    )
    found = []
    for membership in memberships:
        if not _subscribed(membership.role, choices.get(membership.user_id)):
            continue
        recipient = _recipient(membership, choices.get(membership.user_id))
        if recipient is not None:
            found.append(recipient)
    return found


def recipient_get(organisation_id: int, *, user_id: int) -> Recipient | None:
    """One member of the organisation as a digest recipient, subscribed or not (for the preview)."""
    membership = (
        Membership.objects.filter(organisation_id=organisation_id, user_id=user_id, user__is_active=True)
        .select_related("user")
        .first()
    )
    if membership is None or not membership.user.email:
        return None
    choice = DigestPreference.objects.filter(user_id=user_id).values_list("subscribed", flat=True).first()
    return _recipient(membership, choice)


def preference_of(user) -> bool:
    """Whether this user gets digests now (their choice, else their role's default)."""
    role = Membership.objects.filter(user=user).values_list("role", flat=True).first()
    choice = DigestPreference.objects.filter(user=user).values_list("subscribed", flat=True).first()
    return role is not None and _subscribed(role, choice)


# --- what a digest says ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpendLine:
    """A team, task or model: this week against last week. None amounts: hidden (too few people)."""

    label: str
    url: str
    this_week_nanos: int | None
    last_week_nanos: int | None

    @property
    def hidden(self) -> bool:
        return self.this_week_nanos is None

    @property
    def this_week(self) -> str:
        return text.usd(self.this_week_nanos)

    @property
    def last_week(self) -> str:
        return text.usd(self.last_week_nanos)

    @property
    def change(self) -> str:
        if self.hidden:
            return ""
        return text.change(self.this_week_nanos or 0, self.last_week_nanos or 0)

    @property
    def delta_nanos(self) -> int:
        return (self.this_week_nanos or 0) - (self.last_week_nanos or 0)


@dataclass(frozen=True, slots=True)
class Headline:
    scope: str  # "Acme", "your teams", "you"
    this_week_nanos: int
    last_week_nanos: int
    month_ago_nanos: int
    unattributed_nanos: int | None  # organisation-wide digests only
    unpriced_rows: int
    url: str
    unattributed_url: str = ""

    @property
    def this_week(self) -> str:
        return text.usd(self.this_week_nanos)

    @property
    def last_week(self) -> str:
        return text.usd(self.last_week_nanos)

    @property
    def month_ago(self) -> str:
        return text.usd(self.month_ago_nanos)

    @property
    def vs_last_week(self) -> str:
        return text.change(self.this_week_nanos, self.last_week_nanos)

    @property
    def vs_month_ago(self) -> str:
        return text.change(self.this_week_nanos, self.month_ago_nanos)

    @property
    def unattributed(self) -> str:
        return text.usd(self.unattributed_nanos)

    @property
    def unattributed_share(self) -> str:
        return text.share(self.unattributed_nanos or 0, self.this_week_nanos)


@dataclass(frozen=True, slots=True)
class BudgetLine:
    label: str
    period: str
    spent: str
    limit: str
    projected: str
    band: str
    percent: int
    status: str  # "over", "near", "under"
    exhaustion_date: dt.date | None
    url: str


@dataclass(frozen=True, slots=True)
class PeopleOver:
    """People at or above a per-person limit: names only for their own manager, a count otherwise."""

    scope: str
    limit: str
    names: tuple[str, ...]
    others: int
    min_group: int
    url: str

    @property
    def others_text(self) -> str:
        if not self.others:
            return ""
        if self.others < self.min_group:
            return f"fewer than {self.min_group} people" if not self.names else "a few others"
        return f"{self.others} {'person' if self.others == 1 else 'people'}"


@dataclass(frozen=True, slots=True)
class SavingsLine:
    label: str
    url: str
    requests: int
    low_nanos: int
    high_nanos: int
    targets: tuple[str, ...]

    @property
    def range(self) -> str:
        return f"{text.usd(self.low_nanos)} – {text.usd(self.high_nanos)}"


@dataclass(frozen=True, slots=True)
class NonWorkLine:
    label: str
    requests: int
    people: int
    avoidable_nanos: int

    @property
    def avoidable(self) -> str:
        return text.usd(self.avoidable_nanos)


@dataclass(frozen=True, slots=True)
class Savings:
    url: str
    routable_requests: int
    routable_low_nanos: int
    routable_high_nanos: int
    avoidable_requests: int
    avoidable_nanos: int | None  # None: hidden (too few people)
    by_team: tuple[SavingsLine, ...]
    non_work: tuple[NonWorkLine, ...]
    hidden_teams: int  # non-work groups not shown (too few people)

    @property
    def routable_range(self) -> str:
        return f"{text.usd(self.routable_low_nanos)} – {text.usd(self.routable_high_nanos)}"

    @property
    def avoidable(self) -> str:
        return text.usd(self.avoidable_nanos)

    @property
    def empty(self) -> bool:
        return not self.routable_requests and not self.avoidable_requests


@dataclass(frozen=True, slots=True)
class RoiLine:
    """One metric for one team or task over the ROI window: outcomes, the AI spend beside them, and what
    that spend bought (cost per outcome; value over spend where the metric has a value per unit)."""

    metric: str
    subject: str
    outcome: str  # "1,234 PRs"
    spend: str
    cost_per_outcome: str  # "$0.42 each", or ""
    roi: str  # "12.3×", or ""
    periods: int
    url: str


@dataclass
class Digest:
    recipient: Recipient
    organisation: str
    week: IsoWeek
    headline: Headline
    teams: list[SpendLine] = field(default_factory=list)
    movers: list[SpendLine] = field(default_factory=list)
    tasks: list[SpendLine] = field(default_factory=list)
    models: list[SpendLine] = field(default_factory=list)
    budgets: list[BudgetLine] | None = None  # None: apps.budgets is not installed
    people_over: list[PeopleOver] = field(default_factory=list)
    savings: Savings | None = None  # None: apps.overuse is not installed (or not for this role)
    roi: list[RoiLine] | None = None  # None: apps.metrics is not installed (or not for this role)
    roi_window: str = ""  # "the 12 weeks to 9 Aug 2026"
    metrics_url: str = ""
    trend: list[tuple[IsoWeek, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sections left out, and why
    dashboard_url: str = ""
    budgets_url: str = ""
    preferences_url: str = ""
    unsubscribe_url: str = ""
    min_group: int = 1

    @property
    def kind(self) -> str:
        return self.recipient.kind

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.recipient.role, self.recipient.role)


class OrganisationWeek:
    """What every digest of one organisation and week shares, computed once per run."""

    def __init__(self, organisation: Organisation, week: IsoWeek, *, base_url: str | None = None):
        self.organisation = organisation
        self.week = week
        self.base_url = (base_url if base_url is not None else settings.SPENDWATCH_BASE_URL).rstrip("/")
        self.min_group = max(1, settings.SPENDWATCH_DIGEST_MIN_GROUP_SIZE)

    def url(self, name: str, *args) -> str:
        return self.base_url + reverse(name, args=args)

    @cached_property
    def overuse(self):
        """The organisation's overuse report for the week (one scan of the week's facts), or None."""
        if not apps.is_installed("apps.overuse"):
            return None
        from apps.overuse.selectors import overuse_report

        week = self.week
        return overuse_report(organisation_viewer(self.organisation), start=week.monday, end=week.sunday)

    def overuse_for(self, viewer: Viewer):
        """The week's report narrowed to what `viewer` may see: the rows scope_usage would return them."""
        report = self.overuse
        if report is None:
            return None
        return dataclasses.replace(
            report,
            viewer=viewer,
            routable=[
                item for item in report.routable if _in_scope(viewer, item[0].team_id, item[0].person_id)
            ],
            non_work=[row for row in report.non_work if _in_scope(viewer, row.team_id, row.person_id)],
        )


def _in_scope(viewer: Viewer, team_id: int | None, person_id: int | None) -> bool:
    """The row-level form of apps.accounts.scoping.scope_usage (same rules, same order; fails closed).

    Used only to narrow rows that scope_usage already limited to the viewer's organisation;
    tests/digests check that it returns exactly what the scoped selector returns.
    """
    if viewer.sees_organisation:
        return True
    if viewer.role == Role.MEMBER:
        return viewer.person_id is not None and person_id == viewer.person_id
    return team_id is not None and bool(viewer.team_ids) and team_id in viewer.team_ids


def _people_per_group(
    viewer: Viewer, dimension: str, week: IsoWeek, *, first: IsoWeek | None = None
) -> dict[int | None, int]:
    """Distinct identified people behind each team or task in the week (or weeks first..week), from the
    rollups (one query). Read here because apps.usage.selectors has no distinct-people count."""
    column = f"{dimension}_id"
    rows = (
        scope_usage(DailyRollup.objects.all(), viewer)
        .filter(day__gte=(first or week).monday, day__lte=week.sunday)
        .values(column)
        .annotate(people=Count("person_id", distinct=True))
        .order_by()
    )
    return {row[column]: row["people"] for row in rows}


def _visible(people: int, min_group: int) -> bool:
    # No identified person behind a group (shared keys, projects): it describes no one.
    return people == 0 or people >= min_group


def _lines(
    this_week: list[SpendGroup],
    last_week: list[SpendGroup],
    people: dict[int | None, int],
    min_group: int,
    url_for,
) -> list[SpendLine]:
    """A line per group of this week or last, largest this week first; hidden ones (too few people) last."""
    now = {group.object_id: group for group in this_week}
    before = {group.object_id: group for group in last_week}
    lines = []
    for object_id in [*now, *(key for key in before if key not in now)]:
        group = now.get(object_id) or before[object_id]
        if not _visible(people.get(object_id, 0), min_group):
            lines.append(SpendLine(group.label, url_for(group), None, None))
            continue
        this = now[object_id].cost_nanos if object_id in now else 0
        last = before[object_id].cost_nanos if object_id in before else 0
        lines.append(SpendLine(group.label, url_for(group), this, last))
    lines.sort(key=lambda line: (line.hidden, -(line.this_week_nanos or 0), line.label))
    return lines


def _weekly_trend(viewer: Viewer, week: IsoWeek, person_id: int | None = None) -> list[tuple[IsoWeek, int]]:
    first = week.shifted(-(TREND_WEEKS - 1))
    totals: dict[IsoWeek, int] = defaultdict(int)
    for point in daily_spend(viewer, series="team", start=first.monday, end=week.sunday, person_id=person_id):
        totals[IsoWeek.of(point.day)] += point.cost_nanos
    return [(first.shifted(offset), totals.get(first.shifted(offset), 0)) for offset in range(TREND_WEEKS)]


def _total(groups: list[SpendGroup]) -> int:
    return sum(group.cost_nanos for group in groups)


def _team_url(context: OrganisationWeek):
    def url_for(group: SpendGroup) -> str:
        if group.key is None:
            return context.url("org:home")  # the attribution page: where unattributed spend is fixed
        return context.url("dashboards:team", group.key)

    return url_for


def _task_url(context: OrganisationWeek):
    def url_for(group: SpendGroup) -> str:
        if group.key is None:
            return context.url("dashboards:tasks")
        return context.url("dashboards:task", group.key)

    return url_for


def build_digest(recipient: Recipient, context: OrganisationWeek) -> Digest:
    """The digest of one recipient for the context's week."""
    builders = {"organisation": _organisation_digest, "manager": _manager_digest, "member": _member_digest}
    digest = builders[recipient.kind](recipient, context)
    digest.dashboard_url = context.url("dashboards:overview")
    digest.budgets_url = context.url("budgets:list") if apps.is_installed("apps.budgets") else ""
    digest.preferences_url = context.url("digests:preferences")
    digest.unsubscribe_url = context.url("digests:unsubscribe", unsubscribe_token(recipient.user_id))
    digest.min_group = context.min_group
    return digest


def _organisation_digest(recipient: Recipient, context: OrganisationWeek) -> Digest:
    viewer, week = recipient.viewer, context.week
    this_week = spend(viewer, group_by="team", start=week.monday, end=week.sunday)
    last = week.shifted(-1)
    last_week = spend(viewer, group_by="team", start=last.monday, end=last.sunday)
    month = week.shifted(-4)
    month_ago = spend(viewer, group_by="team", start=month.monday, end=month.sunday)
    people = _people_per_group(viewer, "team", week) if context.min_group > 1 else {}
    teams = _lines(this_week, last_week, people, context.min_group, _team_url(context))
    movers = sorted(
        (line for line in teams if not line.hidden and line.delta_nanos and line.label),
        key=lambda line: (-abs(line.delta_nanos), line.label),
    )[:TOP_LINES]
    digest = Digest(
        recipient=recipient,
        organisation=context.organisation.name,
        week=week,
        headline=Headline(
            scope=context.organisation.name,
            this_week_nanos=_total(this_week),
            last_week_nanos=_total(last_week),
            month_ago_nanos=_total(month_ago),
            unattributed_nanos=sum(group.cost_nanos for group in this_week if group.object_id is None),
            unpriced_rows=sum(group.unpriced_rows for group in this_week),
            url=context.url("dashboards:overview"),
            unattributed_url=context.url("org:home"),
        ),
        teams=teams,
        movers=movers,
        trend=_weekly_trend(viewer, week),
    )
    _add_roi(digest, recipient, context)
    _add_budgets(digest, recipient, context, names=False)
    _add_savings(digest, recipient, context, people)
    return digest


def _manager_digest(recipient: Recipient, context: OrganisationWeek) -> Digest:
    viewer, week = recipient.viewer, context.week
    last, month = week.shifted(-1), week.shifted(-4)
    this_week = spend(viewer, group_by="team", start=week.monday, end=week.sunday)
    last_week = spend(viewer, group_by="team", start=last.monday, end=last.sunday)
    month_ago = spend(viewer, group_by="team", start=month.monday, end=month.sunday)
    team_people = _people_per_group(viewer, "team", week) if context.min_group > 1 else {}
    teams = _lines(this_week, last_week, team_people, context.min_group, _team_url(context))
    tasks_now = spend(viewer, group_by="task", start=week.monday, end=week.sunday)
    tasks_before = spend(viewer, group_by="task", start=last.monday, end=last.sunday)
    task_people = _people_per_group(viewer, "task", week) if context.min_group > 1 else {}
    overview = context.url("dashboards:overview")
    tasks = _lines(tasks_now, tasks_before, task_people, context.min_group, _task_url(context))
    digest = Digest(
        recipient=recipient,
        organisation=context.organisation.name,
        week=week,
        headline=Headline(
            scope="your teams",
            this_week_nanos=_total(this_week),
            last_week_nanos=_total(last_week),
            month_ago_nanos=_total(month_ago),
            unattributed_nanos=None,
            unpriced_rows=sum(group.unpriced_rows for group in this_week),
            url=overview,
        ),
        teams=teams,
        tasks=[line for line in tasks if line.hidden or line.this_week_nanos][:TOP_LINES],
        trend=_weekly_trend(viewer, week),
    )
    _add_roi(digest, recipient, context)
    _add_budgets(digest, recipient, context, names=True)
    _add_savings(digest, recipient, context, team_people)
    return digest


def _member_digest(recipient: Recipient, context: OrganisationWeek) -> Digest:
    viewer, week = recipient.viewer, context.week
    last, month = week.shifted(-1), week.shifted(-4)
    person_id = recipient.person_id
    this_week = spend(viewer, group_by="model", start=week.monday, end=week.sunday, person_id=person_id)
    last_week = spend(viewer, group_by="model", start=last.monday, end=last.sunday, person_id=person_id)
    month_ago = spend(viewer, group_by="model", start=month.monday, end=month.sunday, person_id=person_id)
    own_page = context.url("dashboards:person", person_id)
    # Their own usage: nothing to hide from them, whatever the group size.
    models = _lines(this_week, last_week, {}, 1, lambda _: own_page)
    digest = Digest(
        recipient=recipient,
        organisation=context.organisation.name,
        week=week,
        headline=Headline(
            scope="you",
            this_week_nanos=_total(this_week),
            last_week_nanos=_total(last_week),
            month_ago_nanos=_total(month_ago),
            unattributed_nanos=None,
            unpriced_rows=sum(group.unpriced_rows for group in this_week),
            url=own_page,
        ),
        models=models[:TOP_LINES],
        trend=_weekly_trend(viewer, week, person_id=person_id),
    )
    _add_budgets(digest, recipient, context, names=False)
    return digest


# --- sections from the apps built beside usage ----------------------------------------------------------


ROI_WEEKS = 12
ROI_LINES = 5


def _quantity(amount: Decimal) -> str:
    """1234.5 -> '1,234.5'; whole numbers without decimals."""
    rounded = amount.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    return f"{rounded:,.0f}" if rounded == rounded.to_integral_value() else f"{rounded:,.1f}"


def _add_roi(digest: Digest, recipient: Recipient, context: OrganisationWeek) -> None:
    """The metrics' best figures over the last ROI_WEEKS weeks: what AI spend bought, per team or task.

    Through apps.metrics' selectors with the recipient's viewer: a manager gets team metrics of their
    own teams only. Spend per subject is a group of people like any other: small groups are left out.
    """
    if not apps.is_installed("apps.metrics"):
        digest.notes.append("ROI highlights need business metrics (apps.metrics), which are not set up here.")
        return
    from apps.metrics.selectors import metrics_for, outcome_points, roi_summary, subjects_for

    viewer, week = recipient.viewer, context.week
    first = week.shifted(-(ROI_WEEKS - 1))
    digest.roi_window = f"the {ROI_WEEKS} weeks to {week.sunday:%-d %b %Y}"
    digest.metrics_url = context.url("metrics:home")
    people: dict[str, dict[int | None, int]] = {}
    if context.min_group > 1:
        people = {kind: _people_per_group(viewer, kind, week, first=first) for kind in ("team", "task")}
    found = []
    for metric in metrics_for(viewer):
        for subject in subjects_for(viewer, metric):
            if people:
                ids = subject.team_ids if subject.team_ids is not None else {subject.pk}
                if not _visible(sum(people[subject.kind].get(pk, 0) for pk in ids), context.min_group):
                    continue
            points = outcome_points(viewer, metric, subject, start=first.monday, end=week.sunday)
            summary = roi_summary(metric, subject, points)
            if not summary.periods or summary.outcome is None:
                continue
            found.append((metric, summary))
    found.sort(
        key=lambda item: (item[1].roi is None, -(item[1].roi or 0), item[0].name, item[1].subject.name)
    )
    digest.roi = [
        RoiLine(
            metric=metric.name,
            subject=summary.subject.name,
            outcome=f"{_quantity(summary.outcome)} {metric.unit}",
            spend=text.usd(summary.spend_nanos),
            cost_per_outcome=(
                f"${summary.cost_per_outcome.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,.2f} each"
                if summary.cost_per_outcome is not None
                else ""
            ),
            roi=f"{summary.roi.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN):,}×" if summary.roi else "",
            periods=summary.periods,
            url=context.url("metrics:detail", metric.key),
        )
        for metric, summary in found[:ROI_LINES]
    ]


def _add_budgets(digest: Digest, recipient: Recipient, context: OrganisationWeek, *, names: bool) -> None:
    """Limits with their period to date and forecast; people at or above a per-person limit."""
    if not apps.is_installed("apps.budgets"):
        digest.notes.append("Budgets are not set up in this SpendWatch: no budget section.")
        return
    from apps.budgets.models import ScopeKind
    from apps.budgets.selectors import limit_rows

    rows = limit_rows(recipient.viewer)
    if recipient.kind == "manager":
        # Their teams' limits; not those that merely apply to them (a default set on a parent team).
        rows = [row for row in rows if row.editable]
    lines, people_over = [], []
    individual = (ScopeKind.PERSON, ScopeKind.PERSON_DEFAULT)
    for row in rows:
        limit = row.limit
        url = context.url("budgets:detail", limit.pk)
        if limit.scope_kind in individual and recipient.kind != "member":
            continue  # gathered below: named only for their own manager
        lines.append(
            BudgetLine(
                label=row.label,
                period=row.period,
                spent=row.spent_text,
                limit=row.limit_text,
                projected=row.projected_text if row.state and row.state.projected is not None else "–",
                band=row.band_text,
                percent=row.percent,
                status=row.status,
                exhaustion_date=row.state.exhaustion_date if row.state else None,
                url=url,
            )
        )
    if recipient.kind != "member":
        people_over = _people_over(
            recipient, [row for row in rows if row.limit.scope_kind in individual], context, names=names
        )
    order = {"over": 0, "near": 1, "under": 2}
    lines.sort(key=lambda line: (order[line.status], -line.percent, line.label))
    digest.budgets = lines
    digest.people_over = people_over


def _people_over(recipient: Recipient, rows, context: OrganisationWeek, *, names: bool) -> list[PeopleOver]:
    from apps.budgets.models import ScopeKind
    from apps.budgets.selectors import states_visible
    from apps.budgets.text import amount_text, period_label, scope_label

    viewer = recipient.viewer
    result: list[PeopleOver] = []
    # Limits set on one person each are gathered into one line: listing them would name everyone.
    own_named: list[str] = []
    own_others = 0
    for row in rows:
        limit = row.limit
        if row.over == 0:
            continue
        over_people = [
            state.person_id or limit.person_id
            for state in states_visible(viewer, limit)
            if state.spent >= state.limit_amount
        ]
        named: list[str] = []
        if names and recipient.person_id is not None:
            named = sorted(
                Person.objects.filter(
                    pk__in=over_people, manager_id=recipient.person_id, organisation_id=viewer.organisation_id
                ).values_list("name", flat=True)
            )
        others = len(over_people) - len(named)
        if limit.scope_kind == ScopeKind.PERSON:
            own_named.extend(named)
            own_others += others
            continue
        result.append(
            PeopleOver(
                scope=scope_label(limit),
                limit=f"{amount_text(limit.amount, limit.unit)} {period_label(limit)}",
                names=tuple(named),
                others=others,
                min_group=context.min_group,
                url=context.url("budgets:detail", limit.pk),
            )
        )
    if own_named or own_others:
        result.append(
            PeopleOver(
                scope="people with a limit of their own",
                limit="their own limit",
                names=tuple(sorted(own_named)),
                others=own_others,
                min_group=context.min_group,
                url=context.url("budgets:list"),
            )
        )
    return result


def _add_savings(
    digest: Digest, recipient: Recipient, context: OrganisationWeek, team_people: dict[int | None, int]
) -> None:
    """Frontier models on trivial prompts (what routing would save) and non-work use, per team."""
    report = context.overuse_for(recipient.viewer)
    if report is None:
        digest.notes.append("Savings opportunities are not available in this SpendWatch.")
        return
    min_group = context.min_group
    url = context.url("overuse:savings")
    routable = report.routable_totals
    by_team = [
        SavingsLine(
            label=item.group.label,
            url=url,
            requests=item.requests,
            low_nanos=item.saving_low_nanos,
            high_nanos=item.saving_high_nanos,
            targets=item.targets,
        )
        for item in report.routable_by("team")
        if item.saving_high_nanos > 0 and _visible(team_people.get(item.group.object_id, 0), min_group)
    ][:3]
    non_work_groups = report.non_work_by("team")
    shown = [item for item in non_work_groups if item.people >= min_group]
    people_in_non_work = len({row.person_id for row in report.non_work if row.person_id is not None})
    digest.savings = Savings(
        url=url,
        routable_requests=routable.requests,
        routable_low_nanos=report.routable_low_nanos,
        routable_high_nanos=routable.high_nanos,
        avoidable_requests=report.non_work_requests,
        avoidable_nanos=report.avoidable_nanos if _visible(people_in_non_work, min_group) else None,
        by_team=tuple(by_team),
        non_work=tuple(
            NonWorkLine(item.group.label, item.requests, item.people, item.avoidable_nanos)
            for item in shown[:3]
        ),
        hidden_teams=len(non_work_groups) - len(shown),
    )
