"""`Prefer: respond-async` on the ingest API: 202 and a receipt at once, a drain into runs, per-body errors."""

import orjson
import pytest
from django.db.models import Count, Sum

from apps.accounts.models import KeyScope
from apps.accounts.services import machine_key_create
from apps.ingestion import buffer
from apps.ingestion.models import BufferedRequest, IngestionRun
from apps.ingestion.services import run_process
from apps.org.models import Organisation
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record

URL = "/api/v1/ingest/litellm_spend_logs/"
COST = 500_000  # nano-dollars of one litellm_record


@pytest.fixture
def ingest_key(acme):
    return machine_key_create(organisation=acme, name="gateway", scopes=[KeyScope.INGEST])[1]


def jsonl(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)


def push(client, key, body: bytes, url: str = URL, content_type="application/x-ndjson", **headers):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_PREFER": "respond-async"}
    extra.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()})
    return client.post(url, data=body, content_type=content_type, **extra)


def receipt(client, key, number: int):
    return client.get(f"/api/v1/ingest/receipts/{number}/", HTTP_AUTHORIZATION=f"Bearer {key}")


def drain_and_process() -> list[int]:
    """What the worker does: the drain task, then each run's process_run task."""
    run_ids = buffer.buffer_drain()
    for run_id in run_ids:
        run_process(run_id=run_id)
    return run_ids


def ledger() -> dict:
    return UsageFact.objects.aggregate(rows=Count("id"), cost=Sum("cost_nanos"))


def test_single_records_are_answered_202_and_one_drain_ingests_them_in_one_run(
    client, ingest_key, settings, tmp_path
):
    settings.SPENDWATCH_UPLOAD_DIR = tmp_path
    answers = [push(client, ingest_key, jsonl(litellm_record(f"r{i}"))) for i in range(50)]

    assert {a.status_code for a in answers} == {202}
    assert answers[0]["Preference-Applied"] == "respond-async"
    first = answers[0].json()
    assert first["status"] == "queued"
    assert first["status_url"] == answers[0]["Location"] == f"/api/v1/ingest/receipts/{first['receipt']}/"
    assert ledger() == {"rows": 0, "cost": None}  # stored, not yet ingested
    assert receipt(client, ingest_key, first["receipt"]).json()["status"] == "queued"

    [run_id] = drain_and_process()

    run = IngestionRun.objects.get(pk=run_id)
    assert run.summary() == {
        "run": run_id,
        "rows": 50,
        "accepted": 50,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    assert ledger() == {"rows": 50, "cost": 50 * COST}
    assert DailyRollup.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == 50 * COST
    assert set(BufferedRequest.objects.values_list("run_id", flat=True)) == {run_id}
    assert set(BufferedRequest.objects.values_list("body", flat=True)) == {b""}  # the run keeps the payload
    [kept] = (tmp_path / "acme").iterdir()
    assert kept.read_bytes() == b"".join(jsonl(litellm_record(f"r{i}")) for i in range(50))
    status = receipt(client, ingest_key, answers[7].json()["receipt"]).json()
    assert (status["status"], status["run"], status["rejected_rows"]) == ("completed", run_id, [])
    assert buffer.buffer_drain() == []  # nothing left


def test_rejected_rows_are_reported_on_each_receipt_at_the_body_own_line(client, ingest_key):
    no_model = {k: v for k, v in litellm_record("bad").items() if k != "model"}
    bodies = [
        jsonl(litellm_record("a1"), litellm_record("a2")),
        jsonl(litellm_record("b1"), no_model, litellm_record("b3")),  # joined: its line 2 is the run's line 4
        jsonl(litellm_record("c1"), b'{"request_id": "cut'),  # not JSON: read alone, with its own lines
        jsonl(litellm_record("d1")),
    ]
    numbers = [push(client, ingest_key, body).json()["receipt"] for body in bodies]

    run_ids = drain_and_process()

    assert len(run_ids) == 3  # a+b joined, c alone, d
    assert ledger() == {"rows": 6, "cost": 6 * COST}
    statuses = [receipt(client, ingest_key, number).json() for number in numbers]
    assert [s["status"] for s in statuses] == ["completed"] * 4
    assert statuses[0]["rejected_rows"] == [] and statuses[3]["rejected_rows"] == []
    [b_error] = statuses[1]["rejected_rows"]
    assert (b_error["line"], b_error["field"]) == (2, "model")
    assert orjson.loads(b_error["raw"])["request_id"] == "bad"
    [c_error] = statuses[2]["rejected_rows"]
    assert (c_error["line"], c_error["field"]) == (2, "(line)")
    assert c_error["raw"] == '{"request_id": "cut'

    # The corrected row sent again is accepted; the rest of its body was already in and stays single.
    fixed = push(client, ingest_key, jsonl(litellm_record("b1"), litellm_record("bad"), litellm_record("b3")))
    drain_and_process()
    assert receipt(client, ingest_key, fixed.json()["receipt"]).json()["status"] == "completed"
    assert ledger() == {"rows": 7, "cost": 7 * COST}


def test_the_same_records_buffered_twice_change_no_total(client, ingest_key):
    body = jsonl(*(litellm_record(f"r{i}") for i in range(20)))
    push(client, ingest_key, body)
    drain_and_process()
    push(client, ingest_key, body)
    [run_id] = drain_and_process()

    assert IngestionRun.objects.get(pk=run_id).summary()["duplicates"] == 20
    assert ledger() == {"rows": 20, "cost": 20 * COST}


def test_an_idempotency_key_returns_the_first_receipt_and_refuses_another_body(client, ingest_key):
    body = jsonl(litellm_record("r1"))
    first = push(client, ingest_key, body, **{"Idempotency-Key": "k-1"})
    again = push(client, ingest_key, body, **{"Idempotency-Key": "k-1"})
    other = push(client, ingest_key, jsonl(litellm_record("r2")), **{"Idempotency-Key": "k-1"})

    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 409)
    assert again.json()["receipt"] == first.json()["receipt"]
    assert BufferedRequest.objects.count() == 1
    drain_and_process()
    assert ledger() == {"rows": 1, "cost": COST}


def test_bodies_that_cannot_be_joined_get_a_run_each(client, ingest_key, tmp_path):
    from tests.ingestion.test_litellm_csv import write_dump  # the LiteLLM_SpendLogs CSV dump layout

    envelope = orjson.dumps({"data": [litellm_record("e1"), litellm_record("e2")]})  # one API page
    array = orjson.dumps([litellm_record("j1")])
    csv_body = (
        write_dump(tmp_path / "dump.csv", [litellm_record("c1"), litellm_record("c2")])
        or (tmp_path / "dump.csv").read_bytes()
    )
    numbers = [
        push(client, ingest_key, jsonl(litellm_record("l1"))).json()["receipt"],
        push(client, ingest_key, envelope).json()["receipt"],
        push(client, ingest_key, array, content_type="application/json").json()["receipt"],
        push(client, ingest_key, csv_body, content_type="text/csv").json()["receipt"],
        push(client, ingest_key, jsonl(litellm_record("l2"))).json()["receipt"],
    ]

    run_ids = drain_and_process()

    assert len(run_ids) == 5  # l1 | page | array | csv | l2: joining never reorders bodies
    assert ledger() == {"rows": 7, "cost": 7 * COST}
    names = dict(BufferedRequest.objects.values_list("pk", "file_name"))
    assert names[numbers[3]] == f"buffered-{numbers[3]}.csv"
    assert {receipt(client, ingest_key, n).json()["status"] for n in numbers} == {"completed"}


def test_a_body_over_the_buffer_limit_is_ingested_at_once(client, ingest_key, settings):
    settings.SPENDWATCH_INGEST_BUFFER_MAX_BYTES = 1_000
    body = jsonl(*(litellm_record(f"r{i}") for i in range(5)))
    assert len(body) > 1_000

    answer = push(client, ingest_key, body)

    assert answer.status_code == 200 and "Preference-Applied" not in answer
    assert answer.json()["accepted"] == 5
    assert BufferedRequest.objects.count() == 0
    assert ledger() == {"rows": 5, "cost": 5 * COST}


def test_receipts_belong_to_their_organisation_and_need_the_ingest_scope(client, ingest_key, acme):
    number = push(client, ingest_key, jsonl(litellm_record("r1"))).json()["receipt"]
    globex = Organisation.objects.create(name="Globex", slug="globex")
    _, globex_key = machine_key_create(organisation=globex, name="gw", scopes=[KeyScope.INGEST])
    _, gateway_key = machine_key_create(organisation=acme, name="check", scopes=[KeyScope.GATEWAY])

    assert receipt(client, ingest_key, number).status_code == 200
    assert receipt(client, globex_key, number).status_code == 404
    assert receipt(client, gateway_key, number).status_code == 403
    assert client.get(f"/api/v1/ingest/receipts/{number}/").status_code in (401, 403)
    assert push(client, gateway_key, jsonl(litellm_record("r2"))).status_code == 403
    assert BufferedRequest.objects.count() == 1


def test_a_drainer_that_loses_the_race_leaves_the_bodies_to_the_winner(client, ingest_key, monkeypatch):
    push(client, ingest_key, jsonl(litellm_record("r1")))
    pending = buffer._claimable()
    # Another drainer claims the body between this one's read and its claim.
    [winner] = buffer.buffer_drain_once()
    monkeypatch.setattr(buffer, "_claimable", lambda up_to=None: pending)

    assert buffer.buffer_drain_once() == []
    assert IngestionRun.objects.count() == 1
    assert BufferedRequest.objects.get().run_id == winner


def test_drained_receipts_are_forgotten_after_their_retention(client, ingest_key, settings):
    import datetime as dt

    from django.utils import timezone

    settings.SPENDWATCH_INGEST_RECEIPT_DAYS = 7
    push(client, ingest_key, jsonl(litellm_record("r1")))
    drain_and_process()
    push(client, ingest_key, jsonl(litellm_record("r2")))  # still queued: never forgotten

    assert buffer.receipts_sweep(now=timezone.now() + dt.timedelta(days=6)) == 0
    assert buffer.receipts_sweep(now=timezone.now() + dt.timedelta(days=8)) == 1
    assert BufferedRequest.objects.get().run_id is None


def test_a_drain_takes_the_bodies_waiting_when_it_starts_and_leaves_later_ones_to_the_next(
    client, ingest_key, settings, monkeypatch
):
    settings.SPENDWATCH_INGEST_BUFFER_DRAIN_ROWS = 2  # several claims for one drain's backlog
    for i in range(5):
        push(client, ingest_key, jsonl(litellm_record(f"r{i}")))
    claim = buffer._claimable
    arrived = []

    def claim_while_requests_arrive(up_to=None):
        # A body is pushed during every claim: none of them may join this drain.
        arrived.append(
            push(client, ingest_key, jsonl(litellm_record(f"late{len(arrived)}"))).json()["receipt"]
        )
        return claim(up_to)

    monkeypatch.setattr(buffer, "_claimable", claim_while_requests_arrive)
    run_ids = buffer.buffer_drain()

    assert len(run_ids) == 3  # 2 + 2 + 1 bodies
    assert set(BufferedRequest.objects.filter(run__isnull=True).values_list("pk", flat=True)) == set(arrived)
    monkeypatch.setattr(buffer, "_claimable", claim)
    assert len(buffer.buffer_drain()) == 2  # the next drain takes the four late ones


def test_a_body_is_stored_and_answered_202_while_the_broker_is_unreachable(
    client, ingest_key, monkeypatch, django_capture_on_commit_callbacks
):
    import kombu.exceptions

    from apps.ingestion.tasks import drain_ingest_buffer

    asked = []

    def broker_down(**options):
        asked.append(options)
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(drain_ingest_buffer, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        answer = push(client, ingest_key, jsonl(litellm_record("r1")))

    assert answer.status_code == 202 and asked == [{"countdown": 2}]
    assert BufferedRequest.objects.filter(run__isnull=True).count() == 1
    drain_and_process()  # what beat's drain does once the broker is back
    assert ledger() == {"rows": 1, "cost": COST}
