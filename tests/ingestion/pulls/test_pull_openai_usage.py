"""Pulling OpenAI Usage pages from a fake provider on 127.0.0.1 (TESTPLAN D1, D2, D3, D5, D6, D7, A12).

The two shared sample pages hold 21 rows (7 per day, 3-5 August): 19,605 requests and $51.0727068 at
list price (tests/ingestion/test_golden_samples.py computes the same from the files independently).
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import json
import logging
import time

import pytest
from django.db.models import Count, Sum

from apps.ingestion import pulls
from apps.ingestion.models import IngestionRun, PullEndpoint, PullSource
from apps.usage.models import UsageFact
from tests.ingestion.pulls.conftest import CANARY, NOW, OPENAI_USAGE_PAGES, pull
from tests.ingestion.pulls.fakeprovider import Reply, Seen, paged
from tests.ingestion.test_golden_samples import assert_matches_checker
from tests.reference import openai_usage_expected

pytestmark = pytest.mark.django_db

PAGE_1, PAGE_2 = (path.read_bytes() for path in OPENAI_USAGE_PAGES)
AUG_3 = 1785715200  # 2026-08-03 00:00 UTC, the first sample bucket
DAY = 86400
USAGE_PATH = "/v1/organization/usage/completions"
ALL_GROUPS = ["project_id", "user_id", "api_key_id", "model", "batch", "service_tier"]
RATE_LIMITED = {"error": {"message": "Rate limit reached for requests per min (RPM)", "type": "requests"}}


def totals(source: PullSource) -> dict:
    endpoint = source.endpoints.get()
    return UsageFact.objects.filter(source=endpoint.data_source).aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), requests=Sum("requests"), output=Sum("output_tokens")
    )


SAMPLE_TOTALS = {"rows": 21, "cost": 51_072_706_800, "requests": 19_605}


def assert_sample_totals(source: PullSource) -> None:
    stored = totals(source)
    assert {key: stored[key] for key in SAMPLE_TOTALS} == SAMPLE_TOTALS
    assert_matches_checker(openai_usage_expected(OPENAI_USAGE_PAGES))


def then_pages(first: list[Reply]):
    """Reply with `first` in order, then serve the sample pages."""
    pages = paged([PAGE_1, PAGE_2])
    queue = list(first)

    def handler(seen: Seen) -> Reply:
        return queue.pop(0) if queue else pages(seen)

    return handler


def test_a_pull_asks_for_the_documented_range_pages_through_and_stores_the_sample_totals(
    make_pull_source, fake_provider
):
    server = fake_provider(paged([PAGE_1, PAGE_2]))
    source = make_pull_source(server.url)

    result = pull(source)

    assert result.status == "ok" and result.reason == ""
    first, second = server.requests
    assert first.path == second.path == USAGE_PATH
    assert first.query == {
        "start_time": [str(AUG_3)],
        "end_time": [str(AUG_3 + 4 * DAY)],  # 7 August 00:00: today's bucket is asked for whole
        "bucket_width": ["1d"],
        "limit": ["31"],
        "group_by": ALL_GROUPS,
    }
    assert second.query == {**first.query, "page": ["page_AAAAAGiu8wAAAAAAaK_QgA=="]}
    assert first.headers["authorization"] == f"Bearer {CANARY}"
    assert_sample_totals(source)
    run = IngestionRun.objects.get(pk=result.endpoints[0].runs[0])
    assert (run.rows, run.accepted, run.duplicates, run.replaced, run.rejected) == (21, 21, 0, 0, 0)
    assert len(run.files) == 2  # each page kept as the run's raw payload
    # Buckets ending up to 5 Aug 12:00 (24 hours before "now") are complete; 5 August's is not yet.
    assert PullEndpoint.objects.get(pull_source=source).cursor == dt.datetime(2026, 8, 5, tzinfo=dt.UTC)
    source.refresh_from_db()
    assert (source.status, source.last_success_at is not None) == ("ok", True)
    assert source.next_pull_at == NOW + dt.timedelta(minutes=60)
    assert (source.lease_token, source.lease_expires_at) == ("", None)


def test_the_next_pull_starts_at_the_cursor_and_a_grown_bucket_replaces_itself(
    make_pull_source, fake_provider
):
    early = json.loads(PAGE_2)
    for result in early["data"][0]["results"]:  # 5 August while it was still filling: half of each count
        for field in ("input_tokens", "output_tokens", "num_model_requests", "input_cached_tokens"):
            result[field] //= 2
        result["input_uncached_tokens"] = result["input_tokens"] - result["input_cached_tokens"]
    served = {"pull": 1}

    def handler(seen: Seen) -> Reply:
        if served["pull"] == 1:
            return Reply(200, PAGE_1 if seen.param("page") is None else json.dumps(early).encode())
        return Reply(200, PAGE_2)

    server = fake_provider(handler)
    source = make_pull_source(server.url)
    pull(source)
    served["pull"] = 2

    result = pull(source, now=NOW + dt.timedelta(hours=1))

    assert server.requests[-1].param("start_time") == str(AUG_3 + 2 * DAY)  # the cursor: 5 August
    run = IngestionRun.objects.get(pk=result.endpoints[0].runs[0])
    assert (run.rows, run.accepted, run.duplicates, run.replaced) == (7, 0, 0, 7)
    assert_sample_totals(source)


def test_d1_retry_after_seconds_is_honoured(make_pull_source, fake_provider):
    server = fake_provider(then_pages([Reply(429, RATE_LIMITED, {"Retry-After": "2"})]))
    source = make_pull_source(server.url)

    result = pull(source)

    assert result.status == "ok"
    refused, retried, _ = server.requests
    assert retried.at - refused.at >= 2.0
    assert retried.query == refused.query
    assert_sample_totals(source)


def test_d1_retry_after_as_an_http_date_is_honoured(make_pull_source, fake_provider):
    not_before = float(int(time.time()) + 2)
    header = email.utils.formatdate(not_before, usegmt=True)
    server = fake_provider(then_pages([Reply(503, {"error": "maintenance"}, {"Retry-After": header})]))
    source = make_pull_source(server.url)

    assert pull(source).status == "ok"

    assert server.requests[1].at >= not_before
    assert_sample_totals(source)


def test_d2_five_429s_back_off_exponentially_with_jitter_capped_then_succeed(make_pull_source, fake_provider):
    server = fake_provider(then_pages([Reply(429, RATE_LIMITED) for _ in range(5)]))
    source = make_pull_source(server.url)

    result = pull(source)

    assert result.status == "ok"
    arrivals = server.times()
    assert len(arrivals) == 7  # 5 refused + the 2 pages
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:6], strict=False)]
    # base 50 ms doubling, capped at 400 ms; "equal jitter" waits between half and all of each step.
    for gap, ceiling in zip(gaps, [0.05, 0.1, 0.2, 0.4, 0.4], strict=True):
        assert ceiling / 2 <= gap <= ceiling + 0.25, (gaps, ceiling)
    assert_sample_totals(source)
    run = IngestionRun.objects.get(pk=result.endpoints[0].runs[0])
    assert (run.accepted, run.duplicates) == (21, 0)


def test_5xx_is_retried_and_the_page_is_fetched_again(make_pull_source, fake_provider):
    server = fake_provider(
        then_pages([Reply(500, {"error": {"message": "internal"}}), Reply(502, b"<html>")])
    )
    source = make_pull_source(server.url)

    assert pull(source).status == "ok"

    assert len(server.requests) == 4
    assert_sample_totals(source)


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "spend limit reached for this organization", "type": "rate_limit_error"}},
        {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        },
    ],
)
def test_d3_a_spend_cap_429_is_not_retried_and_blocks_the_source(
    make_pull_source, fake_provider, caplog, body
):
    server = fake_provider(lambda seen: Reply(429, body))
    source = make_pull_source(server.url)

    with caplog.at_level(logging.WARNING):
        result = pull(source)

    assert len(server.requests) == 1
    assert result.status == "blocked_by_provider_limit"
    source.refresh_from_db()
    assert source.status == "blocked_by_provider_limit"
    assert source.status_reason == f"429 from {USAGE_PATH}: " + ": ".join(
        str(value) for key in ("type", "code", "message") if (value := body["error"].get(key))
    )
    assert source.status_at is not None
    alerts = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in alerts] == [
        f"pull source 'openai-admin' blocked by provider limit: {source.status_reason}"
    ]
    assert not UsageFact.objects.exists()
    assert PullEndpoint.objects.get(pull_source=source).cursor is None
    # Blocked sources wait for a person: the scheduler does not enqueue them.
    PullSource.objects.filter(pk=source.pk).update(next_pull_at=None)
    assert pulls.due_pull_ids(now=NOW) == []


@pytest.mark.parametrize("status", [401, 403])
def test_d6_rejected_credentials_are_not_retried_and_mark_the_source(make_pull_source, fake_provider, status):
    body = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}
    server = fake_provider(lambda seen: Reply(status, body))
    source = make_pull_source(server.url)

    result = pull(source)

    assert len(server.requests) == 1
    assert result.status == "credentials_rejected"
    source.refresh_from_db()
    assert source.status == "credentials_rejected"
    assert (
        source.status_reason
        == f"{status} from {USAGE_PATH}: invalid_request_error: Incorrect API key provided."
    )
    assert CANARY not in source.status_reason
    PullSource.objects.filter(pk=source.pk).update(next_pull_at=None)
    assert pulls.due_pull_ids(now=NOW) == []
    # A new key makes it due again.
    pulls.credential_replace(source, "sk-admin-replacement-0123456789")
    assert pulls.due_pull_ids(now=NOW) == [source.pk]


def test_d5_a_record_on_two_pages_is_counted_once_and_paging_stops_on_has_more_false(
    make_pull_source, fake_provider
):
    first, second = json.loads(PAGE_1), json.loads(PAGE_2)
    second["data"] = [copy.deepcopy(first["data"][1])] + second["data"]  # 4 August also on page 2
    server = fake_provider(paged([PAGE_1, json.dumps(second).encode()]))
    source = make_pull_source(server.url)

    result = pull(source)

    assert result.status == "ok"
    assert len(server.requests) == 2
    run = IngestionRun.objects.get(pk=result.endpoints[0].runs[0])
    assert (run.rows, run.accepted, run.duplicates, run.replaced) == (28, 21, 7, 0)
    assert_sample_totals(source)


def test_d5_the_page_cap_stops_endless_paging_with_an_error(make_pull_source, fake_provider):
    endless = json.loads(PAGE_1)

    def handler(seen: Seen) -> Reply:
        endless["next_page"] = f"page_{len(server.requests)}"
        return Reply(200, json.dumps(endless).encode())

    server = fake_provider(handler)
    source = make_pull_source(server.url)

    result = pull(source)

    assert len(server.requests) == 50  # SPENDWATCH_PULL_MAX_PAGES in these tests
    assert result.status == "failing"
    source.refresh_from_db()
    assert source.status_reason == (
        "openai_usage: 2026-08-03..2026-08-07: more than 50 pages (SPENDWATCH_PULL_MAX_PAGES); "
        "stopped instead of paging on"
    )
    assert not UsageFact.objects.exists()
    assert PullEndpoint.objects.get(pull_source=source).cursor is None


def test_d5_a_repeated_page_token_stops_paging(make_pull_source, fake_provider):
    server = fake_provider(lambda seen: Reply(200, PAGE_1))  # always has_more, always the same token
    source = make_pull_source(server.url)

    result = pull(source)

    assert len(server.requests) == 2
    assert result.status == "failing"
    assert "the provider returned the same next_page twice" in result.reason
    assert not UsageFact.objects.exists()


def test_d7_a_connection_reset_mid_page_retries_that_page(make_pull_source, fake_provider):
    pages = paged([PAGE_1, PAGE_2])
    resets = {"left": 1}

    def handler(seen: Seen) -> Reply:
        reply = pages(seen)
        if seen.param("page") and resets["left"]:
            resets["left"] -= 1
            reply.reset = True
        return reply

    server = fake_provider(handler)
    source = make_pull_source(server.url)

    assert pull(source).status == "ok"

    assert [seen.param("page") for seen in server.requests] == [None, "page_AAAAAGiu8wAAAAAAaK_QgA=="] + [
        "page_AAAAAGiu8wAAAAAAaK_QgA=="
    ]
    assert_sample_totals(source)


def test_d7_a_timeout_retries_the_page(make_pull_source, fake_provider):
    server = fake_provider(then_pages([Reply(200, PAGE_1, delay=1.5)]))  # the client gives up after 1 s
    source = make_pull_source(server.url)

    assert pull(source).status == "ok"

    assert len(server.requests) == 3
    assert_sample_totals(source)


def test_d7_a_window_that_cannot_be_fetched_is_not_ingested_and_the_cursor_stays_behind_it(
    make_pull_source, fake_provider, settings
):
    settings.SPENDWATCH_PULL_MAX_ATTEMPTS = 3
    july_27 = AUG_3 - 7 * DAY
    quiet_july = {
        "object": "page",
        "data": [{"object": "bucket", "start_time": july_27, "end_time": july_27 + DAY, "results": []}],
        "has_more": False,
        "next_page": None,
    }
    pages = paged([PAGE_1, PAGE_2])
    broken = {"page_2": True}

    def handler(seen: Seen) -> Reply:
        if int(seen.param("start_time")) < AUG_3 - 7 * DAY:  # the first 31-day window: 27 June - 27 July
            return Reply(200, quiet_july)
        return Reply(200, PAGE_2, reset=True) if seen.param("page") and broken["page_2"] else pages(seen)

    server = fake_provider(handler)
    source = make_pull_source(server.url, backfill_days=40)

    result = pull(source)

    assert result.status == "failing"
    assert "RemoteProtocolError" in result.reason or "ReadError" in result.reason
    assert "gave up after 3 attempts" in result.reason
    # Window 1 (27 June - 28 July) was ingested and passed; window 2's first page was fetched, not ingested.
    cursor = PullEndpoint.objects.get(pull_source=source).cursor
    assert cursor == dt.datetime(2026, 7, 28, tzinfo=dt.UTC)
    assert not UsageFact.objects.exists()
    assert len(list((settings.SPENDWATCH_UPLOAD_DIR / "acme").iterdir())) == 1  # only window 1's page kept

    broken["page_2"] = False
    assert pull(source).status == "ok"
    assert server.requests[-2].param("start_time") == str(int(cursor.timestamp()))
    assert_sample_totals(source)


def test_a12_a_backfill_run_twice_changes_no_total_and_leaves_the_cursor_where_the_first_left_it(
    make_pull_source, fake_provider
):
    server = fake_provider(paged([PAGE_1, PAGE_2]))
    source = make_pull_source(server.url, backfill_days=0)

    first = pulls.pull_run(source_id=source.pk, backfill_days=3, now=NOW)
    after_first = (totals(source), PullEndpoint.objects.get(pull_source=source).cursor)
    second = pulls.pull_run(source_id=source.pk, backfill_days=3, now=NOW)

    assert server.requests[0].param("start_time") == server.requests[2].param("start_time") == str(AUG_3)
    assert (totals(source), PullEndpoint.objects.get(pull_source=source).cursor) == after_first
    assert after_first[1] == dt.datetime(2026, 8, 5, tzinfo=dt.UTC)
    assert_sample_totals(source)
    run = IngestionRun.objects.get(pk=second.endpoints[0].runs[0])
    assert (run.accepted, run.duplicates, run.replaced) == (0, 21, 0)
    assert first.status == second.status == "ok"
