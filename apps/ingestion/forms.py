from django import forms

from apps.ingestion.adapters import ADAPTERS


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def clean(self, data, initial=None):
        single = super().clean
        return (
            [single(item, initial) for item in data]
            if isinstance(data, list | tuple)
            else [single(data, initial)]
        )


class UploadForm(forms.Form):
    format = forms.ChoiceField(
        choices=[(name, adapter.description) for name, adapter in sorted(ADAPTERS.items())]
    )
    source = forms.CharField(
        max_length=100, required=False, help_text="Data source name (default: upload-FORMAT)"
    )
    files = MultipleFileField(widget=MultipleFileInput(attrs={"multiple": True}))
