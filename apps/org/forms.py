"""Forms of the attribution pages; choices are scoped to what the viewer may name."""

from __future__ import annotations

from django import forms

from apps.accounts.scoping import Viewer
from apps.org.attribution import compile_pattern
from apps.org.models import IdentityKind, Person, Task, Team, identity_kind_validator
from apps.org.services import IdentityInput, RuleInput


def _teams(viewer: Viewer):
    teams = Team.objects.filter(organisation_id=viewer.organisation_id)
    return teams if viewer.sees_organisation else teams.filter(pk__in=viewer.team_ids or ())


def _people(viewer: Viewer):
    people = Person.objects.filter(organisation_id=viewer.organisation_id).order_by("email")
    return people if viewer.sees_organisation else people.filter(team_id__in=viewer.team_ids or ())


class _TargetForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    person = forms.ModelChoiceField(queryset=Person.objects.none(), required=False)
    task = forms.ModelChoiceField(queryset=Task.objects.none(), required=False)

    def __init__(self, viewer: Viewer, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        self.fields["team"].queryset = _teams(viewer)
        self.fields["person"].queryset = _people(viewer)
        self.fields["person"].label_from_instance = lambda person: f"{person.name} <{person.email}>"
        self.fields["task"].queryset = Task.objects.filter(organisation_id=viewer.organisation_id)

    def clean(self):
        cleaned = super().clean()
        if not any(cleaned.get(name) for name in ("team", "person", "task")):
            raise forms.ValidationError("Choose a team, a person or a task.")
        return cleaned

    def _ids(self) -> dict:
        return {
            f"{name}_id": getattr(self.cleaned_data.get(name), "pk", None)
            for name in ("team", "person", "task")
        }


class RuleForm(_TargetForm):
    order = forms.IntegerField(min_value=0, max_value=1_000_000, initial=100, help_text="Lower runs first.")
    source = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="any source",
        help_text="Only rows of this data source (applied by re-attribution runs).",
    )
    field = forms.CharField(
        max_length=64,
        validators=[identity_kind_validator],
        help_text="The raw identity field, e.g. user, api_key_alias, project, tag, arn.",
        widget=forms.TextInput(attrs={"list": "identity-kinds"}),
    )
    pattern = forms.CharField(
        max_length=500, help_text="A regular expression searched in the value; ^…$ to match it whole."
    )
    note = forms.CharField(max_length=300, required=False)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    field_order = ["order", "source", "field", "pattern", "team", "person", "task", "note", "is_active"]

    def __init__(self, viewer: Viewer, *args, **kwargs) -> None:
        super().__init__(viewer, *args, **kwargs)
        from apps.ingestion.models import DataSource  # sources are an ingestion concept

        self.fields["source"].queryset = DataSource.objects.filter(organisation_id=viewer.organisation_id)

    def clean_pattern(self) -> str:
        pattern = self.cleaned_data["pattern"]
        try:
            compile_pattern(pattern)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return pattern

    def to_input(self) -> RuleInput:
        data = self.cleaned_data
        return RuleInput(
            field=data["field"],
            pattern=data["pattern"],
            order=data["order"],
            source_id=getattr(data.get("source"), "pk", None),
            note=data.get("note", ""),
            is_active=data.get("is_active", False),
            **self._ids(),
        )

    @staticmethod
    def initial_for(rule) -> dict:
        return {
            "order": rule.order,
            "source": rule.source_id,
            "field": rule.field,
            "pattern": rule.pattern,
            "team": rule.team_id,
            "person": rule.person_id,
            "task": rule.task_id,
            "note": rule.note,
            "is_active": rule.is_active,
        }


class IdentityForm(_TargetForm):
    kind = forms.CharField(
        max_length=64,
        validators=[identity_kind_validator],
        widget=forms.TextInput(attrs={"list": "identity-kinds"}),
        help_text="The raw identity field, e.g. api_key, project, gateway_team, tag.",
    )
    value = forms.CharField(max_length=300, help_text="The exact value as the source sends it.")

    field_order = ["kind", "value", "team", "person", "task"]

    def to_input(self) -> IdentityInput:
        return IdentityInput(kind=self.cleaned_data["kind"], value=self.cleaned_data["value"], **self._ids())

    @staticmethod
    def initial_for(identity) -> dict:
        return {
            "kind": identity.kind,
            "value": identity.value,
            "team": identity.team_id,
            "person": identity.person_id,
            "task": identity.task_id,
        }


class TaskForm(forms.Form):
    name = forms.CharField(max_length=200)
    key = forms.SlugField(max_length=100, required=False, help_text="Optional; made from the name.")
    tag = forms.CharField(max_length=300, required=False, widget=forms.HiddenInput)


class TaskRenameForm(forms.Form):
    name = forms.CharField(max_length=200)


class PeopleUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV: email, name, team, manager_email, cost_centre, annual_loaded_cost."
    )
    full_list = forms.BooleanField(
        required=False,
        initial=True,
        label="This is the full list",
        help_text="People of the organisation missing from a full list are deactivated (never deleted).",
    )


IDENTITY_KINDS = [kind.value for kind in IdentityKind]
