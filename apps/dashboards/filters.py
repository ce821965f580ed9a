"""The dashboards' filters: date range, team, provider, model and task, all in the URL's query string.

A filtered view is a link anyone can share; each recipient sees it through their own scope. A team,
person or task the viewer may not see answers 404 like any out-of-scope object, never an empty page.
`~none` selects the rows without that dimension (the unattributed team, no person, no task).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.http import Http404, HttpRequest
from django.utils import timezone

from apps.accounts.scoping import Viewer, subtree_team_ids
from apps.catalog.models import AIModel, Provider
from apps.org.models import Organisation, Person, Task, Team

DEFAULT_DAYS = 30
MAX_DAYS = 366
NONE = "~none"  # "rows without this dimension"; a tilde cannot appear in a slug or an id


class FilterError(ValueError):
    """The query string cannot be read (bad dates, too long a range); the message says which field."""


class FilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    team = forms.CharField(required=False, max_length=60)
    provider = forms.CharField(required=False, max_length=60)
    model = forms.CharField(required=False, max_length=260)  # "provider/name"
    task = forms.CharField(required=False, max_length=110)
    person = forms.CharField(required=False, max_length=20)  # drill-down only: an id

    def __init__(self, data, *, today: dt.date) -> None:
        super().__init__(data)
        self.today = today

    def clean(self) -> dict:
        cleaned = super().clean()
        end = cleaned.get("end") or self.today
        start = cleaned.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if end < start:
            raise forms.ValidationError("The end date is before the start date.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned


@dataclass(frozen=True, slots=True)
class Filters:
    """What a page shows. `team_ids` is the chosen team and every team below it (None: no team filter);
    `no_team` / `no_task` / `no_person` select the rows without one."""

    start: dt.date
    end: dt.date
    today: dt.date
    team: Team | None = None
    team_ids: frozenset[int] | None = None
    no_team: bool = False
    provider: Provider | None = None
    model: AIModel | None = None
    task: Task | None = None
    no_task: bool = False
    person: Person | None = None
    no_person: bool = False

    @property
    def dimensions(self) -> frozenset[str]:
        """The ledger dimensions these filters constrain (which rollup can answer them depends on it)."""
        used = set()
        if self.team_ids is not None or self.no_team:
            used.add("team")
        if self.provider is not None:
            used.add("provider")
        if self.model is not None:
            used.add("model")
        if self.task is not None or self.no_task:
            used.add("task")
        if self.person is not None or self.no_person:
            used.add("person")
        return frozenset(used)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def params(self) -> dict[str, str]:
        """The query-string values of these filters (the shareable form; defaults left out)."""
        values = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        if self.no_team:
            values["team"] = NONE
        elif self.team is not None:
            values["team"] = self.team.slug
        if self.provider is not None:
            values["provider"] = self.provider.slug
        if self.model is not None:
            values["model"] = model_key(self.model)
        if self.no_task:
            values["task"] = NONE
        elif self.task is not None:
            values["task"] = self.task.key
        if self.no_person:
            values["person"] = NONE
        elif self.person is not None:
            values["person"] = str(self.person.pk)
        return values

    def query(self, **overrides: str | None) -> str:
        """The query string with some values replaced (None removes one): links keep the other filters."""
        values = self.params()
        for name, value in overrides.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        return urlencode(values)

    def without_team(self) -> Filters:
        return replace(self, team=None, team_ids=None, no_team=False)


def model_key(model: AIModel) -> str:
    return f"{model.provider.slug}/{model.name}"


def organisation_today(organisation: Organisation) -> dt.date:
    return timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()


def filters_from_request(request: HttpRequest, viewer: Viewer, organisation: Organisation) -> Filters:
    """The page's filters, each resolved within the viewer's scope. Raises FilterError for input that
    cannot be read, Http404 for a team/person/task the viewer may not see or a provider/model that
    does not exist."""
    today = organisation_today(organisation)
    form = FilterForm(request.GET, today=today)
    if not form.is_valid():
        problems = "; ".join(
            f"{'dates' if field == '__all__' else field}: {' '.join(messages)}"
            for field, messages in form.errors.items()
        )
        raise FilterError(problems)
    data = form.cleaned_data
    filters = Filters(start=data["start"], end=data["end"], today=today)
    if data["team"]:
        filters = _with_team(filters, viewer, data["team"])
    if data["provider"]:
        provider = Provider.objects.filter(slug=data["provider"]).first()
        if provider is None:
            raise Http404("no such provider")
        filters = replace(filters, provider=provider)
    if data["model"]:
        filters = replace(filters, model=_model(data["model"]))
    if data["task"]:
        filters = _with_task(filters, viewer, data["task"])
    if data["person"]:
        filters = _with_person(filters, viewer, data["person"])
    return filters


def _with_team(filters: Filters, viewer: Viewer, slug: str) -> Filters:
    if slug == NONE:
        return replace(filters, no_team=True)
    team = Team.objects.filter(organisation_id=viewer.organisation_id, slug=slug).first()
    if team is None or not viewer.can_see_team(team.pk):
        raise Http404("no such team")
    return replace(filters, team=team, team_ids=subtree_team_ids(viewer.organisation_id, {team.pk}))


def _model(key: str) -> AIModel:
    provider, _, name = key.partition("/")
    model = AIModel.objects.filter(provider__slug=provider, name=name).select_related("provider").first()
    if model is None:
        raise Http404("no such model")
    return model


def _with_task(filters: Filters, viewer: Viewer, key: str) -> Filters:
    if key == NONE:
        return replace(filters, no_task=True)
    task = Task.objects.filter(organisation_id=viewer.organisation_id, key=key).first()
    if task is None:
        raise Http404("no such task")
    return replace(filters, task=task)


def _with_person(filters: Filters, viewer: Viewer, value: str) -> Filters:
    if value == NONE:
        return replace(filters, no_person=True)
    if not value.isdigit():
        raise Http404("no such person")
    person = Person.objects.filter(organisation_id=viewer.organisation_id, pk=int(value)).first()
    if person is None or not viewer.can_see_person(person.pk, person.team_id):
        raise Http404("no such person")
    return replace(filters, person=person)
