"""Gateway prompts reach the classifier through the real pipeline, and follow the storage policy."""

from pathlib import Path

import orjson
import pytest

from apps.ingestion.models import RejectedRow
from apps.overuse.models import PromptObservation, PromptStorage
from apps.overuse.services import policy_set
from tests.conftest import litellm_record, write_jsonl
from tests.overuse.test_observe import database_rows_containing

SECRET = "the heron counts seventeen invoices for Dana"


def with_prompt(request_id: str, text, **overrides) -> dict:
    return litellm_record(
        request_id,
        messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": text}],
        **overrides,
    )


@pytest.fixture
def gateway_file(tmp_path):
    records = [
        with_prompt("r1", "how's it going?"),
        with_prompt("r2", "what's the weather in Lisbon this weekend?"),
        with_prompt("r3", SECRET + ": reconcile the March ledger against the bank export and list gaps"),
        with_prompt("r4", [{"type": "text", "text": "hi"}]),
        litellm_record("r5"),  # a request logged without its prompt
        with_prompt("r6", SECRET, prompt_tokens=-5),  # rejected: negative tokens
    ]
    return write_jsonl(tmp_path / "gateway.jsonl", records)


def observed() -> list[tuple[str, str, int]]:
    return list(
        PromptObservation.objects.order_by("record_key").values_list("record_key", "label", "prompt_chars")
    )


def test_each_prompt_is_classified_once_even_when_the_file_is_ingested_again(ingest, gateway_file):
    first = ingest("litellm_spend_logs", gateway_file)
    assert (first.accepted, first.rejected) == (5, 1)
    expected = [
        ("r1", "trivial", len("how's it going?")),
        ("r2", "non_work", len("what's the weather in Lisbon this weekend?")),
        (
            "r3",
            "substantive",
            len(SECRET + ": reconcile the March ledger against the bank export and list gaps"),
        ),
        ("r4", "trivial", 2),
    ]
    assert observed() == expected

    again = ingest("litellm_spend_logs", gateway_file)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert observed() == expected


def test_under_the_none_policy_no_prompt_text_is_stored_not_even_in_rejected_rows(ingest, gateway_file, acme):
    policy_set(organisation_id=acme.pk, prompt_storage=PromptStorage.NONE)
    run = ingest("litellm_spend_logs", gateway_file)

    assert run.rejected == 1
    rejected = RejectedRow.objects.get()
    assert (rejected.line, rejected.field) == (6, "prompt_tokens")
    assert '"request_id":"r6"' in rejected.raw  # still enough to fix and resubmit the usage
    assert len(observed()) == 4
    assert database_rows_containing("heron counts seventeen") == {}
    assert database_rows_containing("weather in Lisbon") == {}


def test_under_the_none_policy_a_pushed_gateway_log_is_not_kept_after_its_run(acme, settings, tmp_path):
    from apps.ingestion.models import RunStatus
    from apps.ingestion.services import payload_ingest, source_get_or_create

    settings.SPENDWATCH_UPLOAD_DIR = tmp_path / "uploads"
    policy_set(organisation_id=acme.pk, prompt_storage=PromptStorage.NONE)
    source = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    body = b"".join(orjson.dumps(with_prompt(f"p{i}", f"{SECRET}, note {i}")) + b"\n" for i in range(3))

    run = payload_ingest(
        source=source, format="litellm_spend_logs", payload=body, suffix=".jsonl", idempotency_key=None
    )

    run.refresh_from_db()
    assert (run.status, run.accepted, run.files) == (RunStatus.COMPLETED, 3, [])
    kept = [path for path in (tmp_path / "uploads").rglob("*") if path.is_file()]
    assert [path for path in kept if b"heron counts" in path.read_bytes()] == []
    assert database_rows_containing("heron counts seventeen") == {}


def test_under_the_default_policy_the_payload_is_kept_for_replay(acme, settings, tmp_path):
    from apps.ingestion.services import payload_ingest, source_get_or_create

    settings.SPENDWATCH_UPLOAD_DIR = tmp_path / "uploads"
    source = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    body = orjson.dumps(with_prompt("p1", "how's it going?")) + b"\n"

    run = payload_ingest(
        source=source, format="litellm_spend_logs", payload=body, suffix=".jsonl", idempotency_key=None
    )

    run.refresh_from_db()
    assert len(run.files) == 1 and Path(run.files[0]).read_bytes() == body
