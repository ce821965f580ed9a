"""Feedback feeds the organisation's next training run, only where the organisation allows it."""

import io

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.scoping import organisation_viewer
from apps.overuse.classifier import base_classifier
from apps.overuse.models import ClassifierTraining, PromptObservation
from apps.overuse.services import classifier_for_organisation, feedback_not_trivial, policy_set
from tests.overuse.conftest import ALICE, GPT5, Request

pytestmark = pytest.mark.django_db


def test_training_on_feedback_needs_the_organisations_consent(acme):
    with pytest.raises(CommandError, match="acme: this organisation does not allow training on its feedback"):
        call_command("train_classifier", "--organisation", "acme")
    with pytest.raises(CommandError, match="no organisation with slug 'nobody'"):
        call_command("train_classifier", "--organisation", "nobody")
    assert ClassifierTraining.objects.count() == 0


def test_feedback_trains_the_organisations_own_classifier(ingest_requests, acme):
    ingest_requests([Request("g1", ALICE, GPT5, "good morning!"), Request("g2", ALICE, GPT5, "hello!")])
    for key in ("g1", "g2"):
        observation = PromptObservation.objects.get(record_key=key)
        feedback_not_trivial(viewer=organisation_viewer(acme), user=None, observation_id=observation.pk)
    assert classifier_for_organisation(acme.pk) is base_classifier()  # no consent yet
    policy_set(organisation_id=acme.pk, train_on_feedback=True)
    assert classifier_for_organisation(acme.pk) is base_classifier()  # consent, but no run yet
    out = io.StringIO()
    call_command("train_classifier", "--organisation", "acme", stdout=out)
    training = ClassifierTraining.objects.get()
    assert training.feedback_examples == 2
    assert training.version != base_classifier().version
    assert f'"version":"{training.version}"' in out.getvalue()
    own = classifier_for_organisation(acme.pk)
    assert own.version == training.version
    ingest_requests([Request("g3", ALICE, GPT5, "bonjour")], name="later.jsonl")
    assert PromptObservation.objects.get(record_key="g3").classifier_version == training.version


def test_train_classifier_without_an_organisation_reports_the_base_model():
    out = io.StringIO()
    call_command("train_classifier", stdout=out)
    assert out.getvalue().strip() == (
        f'{{"version":"{base_classifier().version}","accuracy":0.9272,"flag_precision":0.9838}}'
    )
