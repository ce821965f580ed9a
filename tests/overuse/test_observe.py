"""observe_prompts under each storage policy (TESTPLAN H5-H7), idempotency, and repeats by keyed hash."""

import pytest
from django.db import connection

from apps.accounts.scoping import organisation_viewer
from apps.org.models import Organisation
from apps.overuse import redaction
from apps.overuse.models import PromptObservation, PromptStorage
from apps.overuse.selectors import repeated_prompts
from apps.overuse.services import PromptItem, observe_prompts, policy_set, prompt_hash_key
from apps.usage.models import UsageFact
from tests.overuse.conftest import ALICE, AT_DATETIME, BOB, DAY, GPT5, Request

pytestmark = pytest.mark.django_db

PLANTED = "The heron counts seventeen barges at Quarry Wharf"
SECRET_PROMPT = (
    f"{PLANTED}. Use key sk-proj-Q3v9XmT2kLp8RwZ4yN6bH1cJ and mail dana.ortiz@example.org or call "
    "+44 20 7946 0958; card 4111 1111 1111 1111."
)


def database_rows_containing(needle: str) -> dict[str, int]:
    """Every table, every column, every row: where does `needle` occur (case-insensitive)?"""
    found: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - introspected names
            hits = sum(
                1 for row in cursor.fetchall() if any(needle.lower() in str(value).lower() for value in row)
            )
            if hits:
                found[table] = hits
    return found


def test_under_the_none_policy_no_prompt_text_is_stored_anywhere(ingest_requests, acme):
    policy_set(organisation_id=acme.pk, prompt_storage=PromptStorage.NONE)
    ingest_requests([Request("s1", ALICE, GPT5, SECRET_PROMPT), Request("s2", BOB, GPT5, "how's it going?")])
    observations = PromptObservation.objects.order_by("record_key")
    assert [(o.record_key, o.label, o.excerpt, o.prompt_chars) for o in observations] == [
        ("s1", "substantive", "", len(SECRET_PROMPT)),
        ("s2", "trivial", "", len("how's it going?")),
    ]
    assert database_rows_containing("heron counts seventeen") == {}
    assert database_rows_containing("how's it going") == {}
    assert database_rows_containing("dana.ortiz") == {}


def test_the_excerpt_policy_stores_at_most_200_redacted_characters(ingest_requests, acme):
    long_prompt = SECRET_PROMPT + " Then summarise the quarterly figures for the board. " * 20
    ingest_requests([Request("s1", ALICE, GPT5, long_prompt)])
    observation = PromptObservation.objects.get()
    assert observation.excerpt == (
        f"{PLANTED}. Use key [API_KEY] and mail [EMAIL] or call [PHONE]; card [CARD]. Then summarise the "
        "quarterly figures for the board.  Then summarise the quarterly f…"
    )
    assert len(observation.excerpt) == 200
    assert observation.prompt_chars == len(long_prompt)
    assert database_rows_containing("sk-proj-Q3v9") == {}
    assert database_rows_containing("4111 1111 1111 1111") == {}


def test_the_full_policy_stores_the_whole_redacted_text(ingest_requests, acme):
    policy_set(organisation_id=acme.pk, prompt_storage=PromptStorage.FULL)
    ingest_requests([Request("s1", ALICE, GPT5, SECRET_PROMPT)])
    assert PromptObservation.objects.get().excerpt == (
        f"{PLANTED}. Use key [API_KEY] and mail [EMAIL] or call [PHONE]; card [CARD]."
    )


def test_choosing_none_later_erases_the_text_already_stored(ingest_requests, acme):
    ingest_requests([Request("s1", ALICE, GPT5, SECRET_PROMPT)])
    assert database_rows_containing("heron counts seventeen") == {"overuse_promptobservation": 1}
    policy_set(organisation_id=acme.pk, prompt_storage=PromptStorage.NONE)
    assert database_rows_containing("heron counts seventeen") == {}
    assert PromptObservation.objects.get().label == "substantive"  # the classification stays


def test_re_ingesting_changes_nothing(ingest_requests, acme):
    requests = [Request("s1", ALICE, GPT5, "how's it going?"), Request("s2", BOB, GPT5, SECRET_PROMPT)]
    ingest_requests(requests)
    before = list(PromptObservation.objects.order_by("record_key").values())
    ingest_requests(requests, name="again.jsonl")
    # The same items twice in one call: the first copy stands.
    source_id = UsageFact.objects.values_list("source_id", flat=True).first()
    observe_prompts(
        organisation_id=acme.pk,
        source_id=source_id,
        items=[
            PromptItem(AT_DATETIME, "s1", "how's it going?"),
            PromptItem(AT_DATETIME, "s1", "something else"),
        ],
    )
    assert list(PromptObservation.objects.order_by("record_key").values()) == before
    assert PromptObservation.objects.count() == 2


def test_empty_prompts_are_skipped(ingest_requests):
    ingest_requests([Request("s1", ALICE, GPT5, ""), Request("s2", ALICE, GPT5, "   \n")])
    assert PromptObservation.objects.count() == 0


def test_identical_prompts_are_found_by_keyed_hash(ingest_requests, acme):
    # Case and spacing differ; the normalised text is the same prompt.
    same = ["Summarise today's open tickets by priority.", "summarise  today's open tickets by PRIORITY."]
    requests = [Request(f"r{i}", ALICE if i % 2 else BOB, GPT5, same[i % 2]) for i in range(12)]
    requests += [
        Request(f"o{i}", ALICE, GPT5, f"Summarise ticket {i} for the on-call engineer.") for i in range(5)
    ]
    requests += [
        Request(f"w{i}", ALICE, GPT5, "what's the weather in Lisbon?") for i in range(15)
    ]  # non-work
    ingest_requests(requests)
    digest = redaction.prompt_hash(prompt_hash_key(acme.pk), same[0])
    found = repeated_prompts(organisation_viewer(acme), start=DAY, end=DAY)
    assert [
        (r.hash_prefix, r.requests, r.people, r.label, r.cost_nanos, r.cacheable_nanos) for r in found
    ] == [(digest[:10], 12, 2, "substantive", 12 * 2_025_000, 11 * 2_025_000)]
    assert PromptObservation.objects.filter(prompt_hash=digest).count() == 12


def test_the_same_prompt_hashes_differently_in_another_organisation(acme):
    globex = Organisation.objects.create(name="Globex", slug="globex")
    text = "hi"
    assert redaction.prompt_hash(prompt_hash_key(acme.pk), text) != redaction.prompt_hash(
        prompt_hash_key(globex.pk), text
    )
    assert len(redaction.prompt_hash(prompt_hash_key(acme.pk), text)) == 64
