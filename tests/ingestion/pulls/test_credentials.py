"""Provider keys at rest and in flight (TESTPLAN H1-H4 for pulls).

A canary admin key is stored, pulled with through every kind of failure, and then looked for in the
captured logs (every logger, DEBUG and up), the task's arguments and result, the source's status, the
exceptions, a dump of the database and the pages. Only its last four characters may ever show.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.ingestion import credentials, tasks
from apps.ingestion.credentials import CredentialError, Secret
from apps.ingestion.models import PullSource
from apps.usage.models import UsageFact
from tests.ingestion.pulls.conftest import CANARY, KEY_A, KEY_B, OPENAI_USAGE_PAGES, pull
from tests.ingestion.pulls.fakeprovider import Reply, Seen, paged

pytestmark = pytest.mark.django_db

PAGES = [path.read_bytes() for path in OPENAI_USAGE_PAGES]
HINT = "…9b2c"


def test_a_secret_never_prints_itself():
    secret = Secret(CANARY)

    assert (repr(secret), str(secret), f"{secret}") == (f"Secret({HINT})",) * 3
    assert secret.reveal() == CANARY
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)


def test_h3_rotation_new_key_first_reencrypt_then_drop_the_old_key(make_pull_source, settings):
    source = make_pull_source("http://127.0.0.1:9")
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B, KEY_A]  # the new key first; the old still decrypts
    assert credentials.decrypt(source.credential_ciphertext, source_name="x").reveal() == CANARY

    out = io.StringIO()
    call_command("pull_source", "--reencrypt-credentials", stdout=out)

    assert json.loads(out.getvalue()) == {"reencrypted": 1}
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B]  # the old key removed
    source.refresh_from_db()
    assert credentials.decrypt(source.credential_ciphertext, source_name="x").reveal() == CANARY
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    with pytest.raises(CredentialError):
        credentials.decrypt(source.credential_ciphertext, source_name="x")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            [KEY_B],
            "the credential of pull source 'openai-admin' cannot be decrypted with the keys in "
            "SPENDWATCH_CREDENTIAL_KEYS (was the key it was encrypted with removed?)",
        ),
        ([], "SPENDWATCH_CREDENTIAL_KEYS is not set: pull credentials cannot be encrypted or decrypted"),
        (
            ["not-a-fernet-key"],
            "SPENDWATCH_CREDENTIAL_KEYS entry 1 is not a Fernet key (32 url-safe base64-encoded bytes)",
        ),
    ],
)
def test_h4_a_wrong_or_missing_key_is_a_loud_error_and_nothing_is_sent(
    make_pull_source, fake_provider, settings, caplog, keys, message
):
    server = fake_provider(paged(PAGES))
    source = make_pull_source(server.url)
    settings.SPENDWATCH_CREDENTIAL_KEYS = keys

    with pytest.raises(CredentialError) as raised:
        pull(source)

    assert str(raised.value) == message
    assert server.requests == []  # never the ciphertext (or anything) sent as a key
    source.refresh_from_db()
    assert (source.status, source.status_reason) == ("failing", message)
    assert source.credential_ciphertext not in caplog.text
    assert not UsageFact.objects.exists()


def test_h4_the_command_exits_2_naming_the_source(make_pull_source, settings, capsys):
    make_pull_source("http://127.0.0.1:9")
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_B]

    with pytest.raises(SystemExit) as exited:
        call_command("pull_source", "openai-admin")

    assert exited.value.code == 2
    assert "pull source 'openai-admin' cannot be decrypted" in capsys.readouterr().err


def script(replies: list[Reply]):
    pages = paged(PAGES)
    queue = list(replies)

    def handler(seen: Seen) -> Reply:
        return queue.pop(0) if queue else pages(seen)

    return handler


def test_h1_h2_the_canary_key_appears_nowhere_but_in_the_request_headers(
    make_pull_source, fake_provider, caplog, monkeypatch, settings, client
):
    settings.SPENDWATCH_PULL_MAX_ATTEMPTS = 3
    echo = {"error": {"message": f"Incorrect API key provided: {CANARY}", "type": "invalid_request_error"}}
    server = fake_provider(
        script(
            [
                Reply(500, {"error": {"message": "internal"}}),
                Reply(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"}),
                Reply(200, PAGES[0], delay=1.5),  # a timeout
                Reply(200, PAGES[0], reset=True),  # the next pull: a reset connection, then the pages
            ]
        )
    )
    source = make_pull_source(server.url)
    caplog.set_level(logging.DEBUG)
    results = []

    results.append(pull(source))  # 500, 429, timeout: gives up after 3 attempts
    results.append(pull(source))  # reset, then the pages
    server.handler = lambda seen: Reply(401, echo)  # a provider that echoes the key back
    results.append(pull(source))
    server.handler = lambda seen: Reply(429, {"error": {"message": "spend limit reached"}})
    results.append(pull(source))
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.pull_source, "delay", lambda *args, **kwargs: sent.append((args, kwargs)))
    PullSource.objects.filter(pk=source.pk).update(status="ok", next_pull_at=None)
    tasks.enqueue_due_pulls()
    task_result = tasks.pull_source.run(source.pk)

    assert [result.status for result in results] == [
        "failing",
        "ok",
        "credentials_rejected",
        "blocked_by_provider_limit",
    ]
    assert {seen.headers["authorization"] for seen in server.requests} == {f"Bearer {CANARY}"}
    source.refresh_from_db()
    assert source.status_reason == "429 from /v1/organization/usage/completions: spend limit reached"
    assert results[2].reason == (
        f"401 from /v1/organization/usage/completions: invalid_request_error: Incorrect API key provided: {HINT}"
    )
    assert sent == [((source.pk,), {})]
    assert "retrying in" in caplog.text and "HTTP Request: GET" in caplog.text  # the logs were captured
    everything = [
        caplog.text,
        repr([(record.msg, record.args, record.exc_text) for record in caplog.records]),
        json.dumps([result.summary() for result in results]),
        json.dumps(task_result),
        repr(sent),
        repr(PullSource.objects.get(pk=source.pk)),
        str(PullSource.objects.values().get(pk=source.pk)),
        _dump_database(),
    ]
    for place in everything:
        assert CANARY not in place
        assert "CANARY" not in place


def _dump_database() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def _login(client, acme, role: str, superuser: bool = False):
    from apps.accounts.models import Membership

    user_model = get_user_model()
    email = f"{role}@acme.example"
    create = user_model.objects.create_superuser if superuser else user_model.objects.create_user
    user = create(username=email, email=email, password="pw-for-tests-1")
    Membership.objects.create(user=user, organisation=acme, role=role)
    client.force_login(user)
    return client


def test_pages_take_the_key_once_and_show_only_its_last_four_characters(acme, client, settings):
    cio = _login(client, acme, "cio", superuser=True)

    response = cio.post(
        "/sources/pulls/",
        {
            "name": "openai-admin",
            "provider": "openai",
            "endpoints": ["openai_usage", "openai_costs"],
            "credential": CANARY,
            "interval_minutes": "60",
            "backfill_days": "30",
            "enabled": "on",
        },
    )

    assert response.status_code == 302
    source = PullSource.objects.get(name="openai-admin")
    assert credentials.decrypt(source.credential_ciphertext, source_name="x").reveal() == CANARY
    assert sorted(source.endpoints.values_list("kind", flat=True)) == ["openai_costs", "openai_usage"]
    listing = cio.get("/sources/pulls/").content.decode()
    edit = cio.get(f"/sources/pulls/{source.pk}/").content.decode()
    invalid = cio.post(
        "/sources/pulls/", {"name": "", "provider": "openai", "credential": CANARY}
    ).content.decode()
    admin = cio.get("/admin/").content.decode()
    for page in (listing, edit, invalid, admin):
        assert "CANARY" not in page
    assert HINT in listing and HINT in edit

    # Saving the form without a key keeps the stored one; with a key, replaces it.
    form = {"endpoints": ["openai_usage"], "interval_minutes": "30", "backfill_days": "7", "enabled": "on"}
    assert cio.post(f"/sources/pulls/{source.pk}/", form).status_code == 302
    source.refresh_from_db()
    assert credentials.decrypt(source.credential_ciphertext, source_name="x").reveal() == CANARY
    assert (source.interval_minutes, list(source.endpoints.values_list("kind", flat=True))) == (
        30,
        ["openai_usage"],
    )
    cio.post(f"/sources/pulls/{source.pk}/", {**form, "credential": "sk-admin-new-key-0000000000abcd"})
    source.refresh_from_db()
    assert source.credential_hint == "…abcd"


def test_pull_pages_are_for_cio_and_finops_only(acme, client, make_pull_source):
    source = make_pull_source("http://127.0.0.1:9")
    member = _login(client, acme, "member")

    assert member.get("/sources/pulls/").status_code == 404
    assert member.get(f"/sources/pulls/{source.pk}/").status_code == 404
    assert member.post(f"/sources/pulls/{source.pk}/pull-now/").status_code == 404


def test_pull_now_queues_the_source_id_after_commit(acme, client, make_pull_source, monkeypatch):
    source = make_pull_source("http://127.0.0.1:9")
    finops = _login(client, acme, "finops")
    queued: list[tuple] = []
    monkeypatch.setattr(tasks.pull_source, "delay_on_commit", lambda *args: queued.append(args))

    response = finops.post(f"/sources/pulls/{source.pk}/pull-now/")

    assert (response.status_code, queued) == (302, [(source.pk,)])


def test_the_command_prints_the_pull_result(make_pull_source, fake_provider, capsys):
    server = fake_provider(paged(PAGES))
    make_pull_source(server.url)

    call_command("pull_source", "openai-admin", "--backfill-days", "3")

    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "ok"
    assert [(endpoint["kind"], endpoint["pages"]) for endpoint in printed["endpoints"]] == [
        ("openai_usage", 2)
    ]
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert server.requests[0].param("start_time") == str(int((today - dt.timedelta(days=3)).timestamp()))
