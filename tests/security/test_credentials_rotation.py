"""Encryption key rotation and unreadable credentials (TESTPLAN H3, H4).

H3: three sources' keys are encrypted with key A; B is put first with A as fallback, `rotate_credential_keys`
re-encrypts, A is removed, and every credential still decrypts (and a pull sends the right key), while A
alone no longer reads any of them. A rotation that meets an unreadable credential changes nothing.
H4: with the key removed, no key at all, or a tampered ciphertext, the pull (through the Celery task) fails
loudly with "cannot be decrypted", the source is marked failing with that reason, the error is logged, and the
fake provider never receives a request.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from apps.ingestion import credentials, tasks
from apps.ingestion.credentials import CredentialError
from apps.ingestion.models import PullSource
from tests.ingestion.pulls.conftest import (  # noqa: F401 - fixtures
    OPENAI_USAGE_PAGES,
    fake_provider,
    make_pull_source,
    pull,
    pull_settings,
)
from tests.ingestion.pulls.fakeprovider import paged

pytestmark = pytest.mark.django_db

KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))
PROVIDER_KEYS = {f"openai-{n}": f"sk-admin-rotation-test-{n}-{'x' * 24}{n:04d}" for n in range(1, 4)}


def plaintexts() -> dict[str, str]:
    return {
        source.name: credentials.decrypt(source.credential_ciphertext, source_name=source.name).reveal()
        for source in PullSource.objects.order_by("name")
    }


def rotate() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("rotate_credential_keys", stdout=out, stderr=err)
        code = 0
    except SystemExit as exited:
        code = exited.code
    return code, out.getvalue(), err.getvalue()


def test_h3_new_key_first_rotate_then_drop_the_old_key(make_pull_source, fake_provider, settings):  # noqa: F811
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    server = fake_provider(paged([path.read_bytes() for path in OPENAI_USAGE_PAGES]))
    for name, key in PROVIDER_KEYS.items():
        make_pull_source(server.url, name=name, credential=key)
    before = dict(PullSource.objects.values_list("name", "credential_ciphertext"))
    assert plaintexts() == PROVIDER_KEYS

    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B, KEY_A]  # the new key first, the old one as fallback
    assert plaintexts() == PROVIDER_KEYS
    assert rotate() == (0, '{"reencrypted":3}\n', "")
    assert plaintexts() == PROVIDER_KEYS

    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B]  # the old key removed
    after = dict(PullSource.objects.values_list("name", "credential_ciphertext"))
    assert plaintexts() == PROVIDER_KEYS
    assert all(after[name] != before[name] for name in PROVIDER_KEYS)
    result = pull(PullSource.objects.get(name="openai-2"))
    assert result.status == "ok"
    assert {seen.headers["authorization"] for seen in server.requests} == {
        f"Bearer {PROVIDER_KEYS['openai-2']}"
    }
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]  # the old key alone reads none of them any more
    for source in PullSource.objects.all():
        with pytest.raises(CredentialError):
            credentials.decrypt(source.credential_ciphertext, source_name=source.name)


def test_h3_a_rotation_that_meets_an_unreadable_credential_changes_nothing(make_pull_source, settings):  # noqa: F811
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    for name, key in PROVIDER_KEYS.items():
        make_pull_source("http://127.0.0.1:9", name=name, credential=key)
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_C]
    make_pull_source("http://127.0.0.1:9", name="openai-9", credential="sk-admin-under-an-unlisted-key-0009")
    before = dict(PullSource.objects.values_list("name", "credential_ciphertext"))

    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B, KEY_A]  # KEY_C is not listed
    code, out, err = rotate()

    assert (code, out) == (2, "")
    assert err == (
        "rotate_credential_keys: the credential of pull source 'openai-9' cannot be decrypted with the keys in "
        "SPENDWATCH_CREDENTIAL_KEYS; nothing was re-encrypted\n"
    )
    assert dict(PullSource.objects.values_list("name", "credential_ciphertext")) == before


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            "remove the key",
            "the credential of pull source 'openai-admin' cannot be decrypted with the keys in "
            "SPENDWATCH_CREDENTIAL_KEYS (was the key it was encrypted with removed?)",
        ),
        (
            "no key at all",
            "SPENDWATCH_CREDENTIAL_KEYS is not set: pull credentials cannot be encrypted or decrypted",
        ),
        (
            "tamper with the ciphertext",
            "the credential of pull source 'openai-admin' cannot be decrypted with the keys in "
            "SPENDWATCH_CREDENTIAL_KEYS (was the key it was encrypted with removed?)",
        ),
        (
            "store plaintext instead of ciphertext",
            "the credential of pull source 'openai-admin' cannot be decrypted with the keys in "
            "SPENDWATCH_CREDENTIAL_KEYS (was the key it was encrypted with removed?)",
        ),
    ],
)
def test_h4_an_unreadable_credential_fails_loudly_and_nothing_is_sent(
    make_pull_source,  # noqa: F811
    fake_provider,  # noqa: F811
    settings,
    caplog,
    break_it,
    message,
):
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    server = fake_provider(paged([path.read_bytes() for path in OPENAI_USAGE_PAGES]))
    source = make_pull_source(server.url, credential="sk-admin-h4-test-key-0000000000000h4h4")
    if break_it == "remove the key":
        settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B]
    elif break_it == "no key at all":
        settings.SPENDWATCH_CREDENTIAL_KEYS = []
    elif break_it == "tamper with the ciphertext":
        ciphertext = source.credential_ciphertext
        tampered = ciphertext[:40] + ("A" if ciphertext[40] != "A" else "B") + ciphertext[41:]
        PullSource.objects.filter(pk=source.pk).update(credential_ciphertext=tampered)
    else:
        PullSource.objects.filter(pk=source.pk).update(
            credential_ciphertext="sk-admin-h4-test-key-0000000000000h4h4"
        )
    caplog.set_level(logging.INFO)

    outcome = tasks.pull_source.apply(args=(source.pk,))

    assert outcome.failed() and isinstance(outcome.result, CredentialError)
    assert str(outcome.result) == message
    assert server.requests == []  # neither the ciphertext nor anything else was sent
    source.refresh_from_db()
    assert (source.status, source.status_reason) == ("failing", message)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"pull source 'openai-admin': {message}" in errors
    assert json.dumps(errors).count("h4-test-key") == 0
