"""POST /api/v1/ingest/{format}/ with machine keys (TESTPLAN A1 via the API, A5, C4, C5)."""

import gzip

import orjson
import pytest
from django.db.models import Count, Sum

from apps.accounts.models import KeyScope, MachineKey
from apps.accounts.services import machine_key_create
from apps.usage.models import UsageFact
from tests.conftest import litellm_record

URL = "/api/v1/ingest/litellm_spend_logs/"


def jsonl(records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)


@pytest.fixture
def ingest_key(acme):
    _, text = machine_key_create(organisation=acme, name="gateway", scopes=[KeyScope.INGEST])
    return text


def post(client, body: bytes, key: str | None, **headers):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    extra.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()})
    return client.post(URL, data=body, content_type="application/x-ndjson", **extra)


def test_a_batch_is_ingested_and_answered_with_its_run_summary(client, ingest_key):
    body = jsonl([litellm_record(f"r{i}") for i in range(1_000)] + [b'{"broken'])
    response = post(client, body, ingest_key)

    assert response.status_code == 200, response.content
    summary = response.json()
    assert {k: summary[k] for k in ("rows", "accepted", "duplicates", "replaced", "rejected")} == {
        "rows": 1_001,
        "accepted": 1_000,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 1,
    }
    assert UsageFact.objects.aggregate(n=Count("id"), cost=Sum("cost_nanos")) == {
        "n": 1_000,
        "cost": 1_000 * 500_000,
    }

    again = post(client, body, ingest_key).json()  # A1 through the API: a re-sent batch changes nothing
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1_000, 1)
    assert UsageFact.objects.count() == 1_000


def test_the_raw_payload_is_kept_under_a_server_chosen_name(client, ingest_key, settings, tmp_path):
    settings.SPENDWATCH_UPLOAD_DIR = tmp_path
    body = jsonl([litellm_record("r1")])
    assert post(client, body, ingest_key).status_code == 200
    [stored] = list((tmp_path / "acme").iterdir())
    assert stored.read_bytes() == body and stored.suffix == ".jsonl"


def test_keys_without_the_scope_or_revoked_or_forged_are_refused(client, acme):
    _, gateway_only = machine_key_create(organisation=acme, name="gw", scopes=[KeyScope.GATEWAY])
    key, revoked = machine_key_create(organisation=acme, name="old", scopes=[KeyScope.INGEST])
    MachineKey.objects.filter(pk=key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    body = jsonl([litellm_record("r1")])

    assert post(client, body, None).status_code in (401, 403)
    assert post(client, body, gateway_only).status_code == 403
    assert post(client, body, revoked).status_code == 401
    assert post(client, body, revoked[:-4] + "AAAA").status_code == 401
    assert UsageFact.objects.count() == 0


def test_the_key_decides_the_organisation(client, acme, ingest_key):
    from apps.org.models import Organisation

    globex = Organisation.objects.create(name="Globex", slug="globex")
    _, globex_key = machine_key_create(organisation=globex, name="gw", scopes=[KeyScope.INGEST])
    post(client, jsonl([litellm_record("same-id")]), globex_key)
    post(client, jsonl([litellm_record("same-id")]), ingest_key)
    assert dict(UsageFact.objects.values_list("organisation__slug").annotate(n=Count("id"))) == {
        "acme": 1,
        "globex": 1,
    }


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, ingest_key, settings):
    settings.SPENDWATCH_INGEST_MAX_BYTES = 10_000
    body = jsonl([litellm_record(f"r{i}") for i in range(100)])
    assert len(body) > 10_000

    response = post(client, body, ingest_key)
    assert response.status_code == 413
    assert "limit of 10000 bytes" in response.json()["detail"]
    assert UsageFact.objects.count() == 0


def test_gzip_bodies_are_inflated_but_never_past_the_limit(client, ingest_key, settings):
    settings.SPENDWATCH_INGEST_MAX_BYTES = 50_000
    small = gzip.compress(jsonl([litellm_record(f"r{i}") for i in range(20)]))
    assert post(client, small, ingest_key, **{"Content-Encoding": "gzip"}).json()["accepted"] == 20

    bomb = gzip.compress(b"\n" * 10_000_000)  # 10 MB of newlines in ~10 kB
    response = post(client, bomb, ingest_key, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert post(client, b"not gzip", ingest_key, **{"Content-Encoding": "gzip"}).status_code == 400


def test_an_idempotency_key_replays_the_same_body_and_refuses_another(client, ingest_key):
    body = jsonl([litellm_record(f"r{i}") for i in range(10)])
    first = post(client, body, ingest_key, **{"Idempotency-Key": "batch-42"})
    replay = post(client, body, ingest_key, **{"Idempotency-Key": "batch-42"})
    other = post(client, jsonl([litellm_record("x")]), ingest_key, **{"Idempotency-Key": "batch-42"})

    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()  # the stored summary, not a second run
    assert other.status_code == 409
    assert UsageFact.objects.count() == 10


def test_unknown_formats_are_404(client, ingest_key):
    response = client.post(
        "/api/v1/ingest/nope/",
        data=b"{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ingest_key}",
    )
    assert response.status_code == 404


def test_the_key_printed_by_the_command_works_once_created(client, acme, capsys):
    from django.core.management import call_command

    call_command("create_machine_key", "--organisation", "acme", "--name", "litellm", "--scope", "ingest")
    text = capsys.readouterr().out.strip()
    assert text.startswith("sw_") and MachineKey.objects.get().secret_hash not in text
    assert post(client, jsonl([litellm_record("r1")]), text).json()["accepted"] == 1
