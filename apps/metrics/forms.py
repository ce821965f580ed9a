"""Forms of the metrics pages; choices are limited to what the viewer may name."""

from __future__ import annotations

from django import forms

from apps.accounts.scoping import Viewer
from apps.metrics.models import Aggregation, Direction, Metric, MetricGrain, MetricScope
from apps.metrics.services import MetricSpec
from apps.org.models import Team


class MetricForm(forms.Form):
    key = forms.SlugField(max_length=100, help_text="Used in CSV files and the API, e.g. tickets-resolved.")
    name = forms.CharField(max_length=200)
    unit = forms.CharField(max_length=50, help_text="What one counts: tickets, PRs, deals, USD, points.")
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.HIGHER)
    aggregation = forms.ChoiceField(
        choices=Aggregation.choices,
        initial=Aggregation.SUM,
        help_text="Counts and amounts add up over periods; scores and rates are averaged.",
    )
    value_per_unit = forms.DecimalField(
        max_digits=18,
        decimal_places=6,
        min_value=0,
        required=False,
        label="Value per unit (USD)",
        help_text="Optional: what one unit is worth to the business. Enables value per AI dollar.",
    )
    scope = forms.ChoiceField(choices=MetricScope.choices, initial=MetricScope.TEAM, label="Counted per")
    grain = forms.ChoiceField(choices=MetricGrain.choices, initial=MetricGrain.WEEK, label="Period")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, metric: Metric | None = None, **kwargs) -> None:
        if metric is not None:
            kwargs.setdefault(
                "initial",
                {
                    name: getattr(metric, name)
                    for name in (
                        "key",
                        "name",
                        "unit",
                        "direction",
                        "aggregation",
                        "value_per_unit",
                        "scope",
                        "grain",
                        "description",
                    )
                },
            )
        super().__init__(*args, **kwargs)
        if metric is not None:
            for name in ("key", "scope", "grain"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once the metric exists."

    def spec(self) -> MetricSpec:
        data = self.cleaned_data
        return MetricSpec(
            key=data["key"],
            name=data["name"],
            unit=data["unit"],
            direction=data["direction"],
            value_per_unit=data.get("value_per_unit"),
            scope=data["scope"],
            grain=data["grain"],
            aggregation=data["aggregation"],
            description=data.get("description") or "",
        )


class ValuesUploadForm(forms.Form):
    metric = forms.ModelChoiceField(
        queryset=Metric.objects.none(),
        required=False,
        empty_label="named in the file (a metric column)",
        help_text="Or choose the metric every row is for; then the file needs no metric column.",
    )
    file = forms.FileField(help_text="CSV: metric, team (or task), period, value.")

    def __init__(self, viewer: Viewer, *args, metrics=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric"].queryset = metrics if metrics is not None else Metric.objects.none()


class AdoptionForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none())
    adopted_on = forms.DateField(
        required=False,
        label="Adopted on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The day AI became part of the team's work (a rollout). Empty clears it.",
    )
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, viewer: Viewer, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.filter(organisation_id=viewer.organisation_id).order_by(
            "name"
        )
