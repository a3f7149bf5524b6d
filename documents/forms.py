from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from documents.models import Document


class SignUpForm(UserCreationForm):
    """Username and password, nothing else: the smallest account that can edit."""


class DocumentTitleForm(forms.ModelForm):
    """The title alone; create and rename share it."""

    class Meta:
        model = Document
        fields = ["title"]
        widgets = {
            "title": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        }

    def clean_title(self) -> str:
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError("A title needs at least one visible character.")
        return title


class DocumentSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search by title")
