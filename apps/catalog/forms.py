"""Forms of the prices pages. Validation of the terms themselves lives in apps.catalog.services."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from apps.catalog.models import OverrideKind

_PRICE = {"max_digits": 18, "decimal_places": 6, "min_value": Decimal(0), "required": False}


class OverrideForm(forms.Form):
    kind = forms.ChoiceField(choices=OverrideKind.choices)
    target = forms.ChoiceField(
        label="Applies to", help_text="A whole provider (discounts only) or one model the organisation uses."
    )
    percent = forms.DecimalField(
        max_digits=7, decimal_places=4, min_value=Decimal("0.0001"), max_value=Decimal(100), required=False,
        help_text="Discounts: percent off the price.",
    )  # fmt: skip
    input_mtok = forms.DecimalField(label="Input, $ per million tokens", **_PRICE)
    output_mtok = forms.DecimalField(label="Output, $ per million tokens", **_PRICE)
    cache_read_mtok = forms.DecimalField(label="Cache read (default: input)", **_PRICE)
    cache_write_mtok = forms.DecimalField(label="Cache write (default: input)", **_PRICE)
    cache_write_1h_mtok = forms.DecimalField(label="1-hour cache write (default: cache write)", **_PRICE)
    valid_from = forms.DateField(
        label="First day (UTC)", widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Facts from this day on are re-priced; earlier ones keep their price.",
    )  # fmt: skip
    valid_to = forms.DateField(
        label="Last day (UTC, empty: open-ended)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    note = forms.CharField(max_length=300, required=False, help_text="e.g. the contract reference")

    def __init__(self, *args, providers: list[tuple[int, str]], models: list[tuple[int, str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(f"provider:{pk}", f"All {slug} models") for pk, slug in providers]
        choices += [(f"model:{pk}", f"{slug}/{name}") for pk, slug, name in models]
        self.fields["target"].choices = choices

    def terms(self) -> dict:
        """The cleaned values as PriceOverride fields (provider/model ids resolved by the view)."""
        data = self.cleaned_data
        kind, target = data["kind"], data["target"]
        level, _, pk = target.partition(":")
        terms = {
            "kind": kind,
            "valid_from": data["valid_from"],
            "valid_to": data.get("valid_to"),
            "note": data.get("note") or "",
            "percent": data.get("percent") if kind != OverrideKind.CUSTOM_PRICE else None,
            "target": (level, int(pk)),
        }
        for name in (
            "input_mtok",
            "output_mtok",
            "cache_read_mtok",
            "cache_write_mtok",
            "cache_write_1h_mtok",
        ):
            terms[name] = data.get(name) if kind == OverrideKind.CUSTOM_PRICE else None
        return terms


class MappingForm(forms.Form):
    provider = forms.SlugField(
        max_length=50, help_text="The price data's provider id: openai, anthropic, google, aws…"
    )
    model = forms.CharField(max_length=200, help_text="A model the price data knows, e.g. gpt-4o")
    note = forms.CharField(max_length=300, required=False)


class CustomPriceForm(forms.Form):
    input_mtok = forms.DecimalField(label="Input, $ per million tokens", **{**_PRICE, "required": True})
    output_mtok = forms.DecimalField(label="Output, $ per million tokens", **{**_PRICE, "required": True})
    cache_read_mtok = forms.DecimalField(label="Cache read (default: input)", **_PRICE)
    cache_write_mtok = forms.DecimalField(label="Cache write (default: input)", **_PRICE)
    valid_from = forms.DateField(label="First day (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(max_length=300, required=False)
