"""Forms for the budget pages. Choices come from the viewer's scope, so a foreign id is simply not valid."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from apps.accounts.scoping import Viewer
from apps.budgets.models import Limit, Period, ScopeKind, Unit
from apps.budgets.selectors import editable_people, editable_teams
from apps.org.models import Task
from apps.usage.models import NANOS_PER_USD


def amount_to_stored(amount: Decimal, unit: str) -> int:
    """USD with cents -> nano-dollars; tokens must be whole."""
    if unit == Unit.USD:
        return int(amount * NANOS_PER_USD)
    if amount != amount.to_integral_value():
        raise forms.ValidationError("a token limit is a whole number of tokens")
    return int(amount)


def stored_to_amount(amount: int, unit: str) -> Decimal:
    if unit == Unit.USD:
        return (Decimal(amount) / NANOS_PER_USD).quantize(Decimal("0.01"))
    return Decimal(amount)


def parse_thresholds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise forms.ValidationError(
            "thresholds are whole percentages separated by commas, e.g. 50, 80, 100"
        ) from None


class LimitCreateForm(forms.Form):
    scope_kind = forms.ChoiceField(label="Applies to", choices=ScopeKind.choices)
    team = forms.ModelChoiceField(queryset=None, required=False)
    person = forms.ModelChoiceField(queryset=None, required=False)
    task = forms.ModelChoiceField(queryset=None, required=False)
    include_subteams = forms.BooleanField(required=False, label="Include sub-teams")
    unit = forms.ChoiceField(choices=Unit.choices, initial=Unit.USD)
    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=18, decimal_places=2)
    period = forms.ChoiceField(choices=Period.choices, initial=Period.MONTH)
    custom_start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    custom_end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    thresholds = forms.CharField(initial="50, 80, 100", help_text="percent of the limit, comma-separated")
    notify_emails = forms.CharField(required=False, label="Also notify", help_text="emails, comma-separated")

    def __init__(self, *args, viewer: Viewer, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = editable_teams(viewer)
        self.fields["person"].queryset = editable_people(viewer)
        # A task spans teams: its budget is the organisation's to set.
        tasks = Task.objects.filter(organisation_id=viewer.organisation_id)
        self.fields["task"].queryset = tasks if viewer.sees_organisation else tasks.none()
        if not viewer.sees_organisation:
            self.fields["scope_kind"].choices = [c for c in ScopeKind.choices if c[0] != ScopeKind.TASK]

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("scope_kind")
        needed = {
            ScopeKind.TEAM: "team",
            ScopeKind.PERSON_DEFAULT: "team",
            ScopeKind.PERSON: "person",
            ScopeKind.TASK: "task",
        }.get(kind)
        if needed and not data.get(needed):
            self.add_error(needed, f"choose the {needed} this limit applies to")
        if data.get("period") == Period.CUSTOM and not (data.get("custom_start") and data.get("custom_end")):
            self.add_error("custom_end", "a custom period needs a start and an end")
        if data.get("amount") is not None and data.get("unit"):
            try:
                data["stored_amount"] = amount_to_stored(data["amount"], data["unit"])
            except forms.ValidationError as error:
                self.add_error("amount", error)
        if data.get("thresholds"):
            try:
                data["threshold_list"] = parse_thresholds(data["thresholds"])
            except forms.ValidationError as error:
                self.add_error("thresholds", error)
        return data


class LimitEditForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=18, decimal_places=2)
    thresholds = forms.CharField(help_text="percent of the limit, comma-separated")
    notify_emails = forms.CharField(required=False, label="Also notify", help_text="emails, comma-separated")

    def __init__(self, *args, limit: Limit, **kwargs) -> None:
        self.limit = limit
        kwargs.setdefault(
            "initial",
            {
                "amount": stored_to_amount(limit.amount, limit.unit),
                "thresholds": ", ".join(str(t) for t in limit.thresholds),
                "notify_emails": limit.notify_emails,
            },
        )
        super().__init__(*args, **kwargs)
        if limit.unit == Unit.TOKENS:
            self.fields["amount"].label = "Amount (tokens)"
        else:
            self.fields["amount"].label = "Amount (USD)"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("amount") is not None:
            try:
                data["stored_amount"] = amount_to_stored(data["amount"], self.limit.unit)
            except forms.ValidationError as error:
                self.add_error("amount", error)
        if data.get("thresholds"):
            try:
                data["threshold_list"] = parse_thresholds(data["thresholds"])
            except forms.ValidationError as error:
                self.add_error("thresholds", error)
        return data


class BudgetSettingsForm(forms.Form):
    fiscal_year_start_month = forms.TypedChoiceField(
        coerce=int,
        choices=[
            (m, name)
            for m, name in enumerate(
                (
                    "January",
                    "February",
                    "March",
                    "April",
                    "May",
                    "June",
                    "July",
                    "August",
                    "September",
                    "October",
                    "November",
                    "December",
                ),
                start=1,
            )
        ],  # fmt: skip
        label="Fiscal year starts in",
    )
    alert_emails = forms.CharField(
        required=False, label="Send every alert to", help_text="emails, comma-separated"
    )
    webhook_url = forms.URLField(
        required=False, label="Webhook (Slack-compatible)", assume_scheme="https", max_length=500
    )
