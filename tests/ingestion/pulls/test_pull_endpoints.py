"""Every pulled endpoint: its real path, auth headers, query parameters and paging, and the totals of the
pages it pulled, exactly (hand-summed from the pages below) and equal to uploading the same pages.

Pages (copies of the shared samples, in ./pages):
- OpenAI Costs, 2 pages: 54 lines, $43.91906060.
- Anthropic usage report, 2 pages: 18 rows; uncached input 25,231,054, cache read 23,446,454, 5-minute
  cache writes 648,856, 1-hour writes 81,178, output 3,107,863.
- Anthropic cost report, 1 page: 69 lines, 21,548.170619 cents = $215.48170619.
- Claude Code usage, 3 August (2 pages) and 4 August (1 page): 7 actor x model rows, estimated 1,086.70 cents.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count, Sum

from apps.ingestion.models import PullEndpoint, PullSource
from apps.usage.models import UsageFact
from tests.ingestion.pulls.conftest import CANARY, NOW, OPENAI_USAGE_PAGES, PAGES, adapters_required, pull
from tests.ingestion.pulls.fakeprovider import Reply, Seen, paged

pytestmark = pytest.mark.django_db

COLUMNS = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "requests",
    "cost_nanos",
    "reported_cost_nanos",
)
NO_MORE = {"data": [], "has_more": False, "next_page": None}


def stored(**filters) -> dict:
    return UsageFact.objects.filter(**filters).aggregate(
        rows=Count("id"), **{column: Sum(column) for column in COLUMNS}
    )


def pulled(source: PullSource, kind: str) -> dict:
    return stored(source=PullEndpoint.objects.get(pull_source=source, kind=kind).data_source)


def pages(*names: str) -> list[bytes]:
    return [(PAGES / name).read_bytes() for name in names]


@adapters_required("openai_usage", "openai_costs")
def test_openai_usage_and_costs_in_one_source(make_pull_source, fake_provider, ingest):
    usage = paged([path.read_bytes() for path in OPENAI_USAGE_PAGES])
    costs = paged(pages("costs_normal_page1.json", "costs_normal_page2.json"))
    server = fake_provider(lambda seen: costs(seen) if seen.path == "/v1/organization/costs" else usage(seen))
    source = make_pull_source(server.url, kinds=("openai_usage", "openai_costs"))

    result = pull(source)

    assert result.status == "ok", result.reason
    cost_requests = [seen for seen in server.requests if seen.path == "/v1/organization/costs"]
    assert len(cost_requests) == 2
    assert cost_requests[0].query == {
        "start_time": ["1785715200"],
        "end_time": ["1786060800"],
        "bucket_width": ["1d"],
        "limit": ["31"],
        "group_by": ["project_id", "line_item"],
    }
    assert cost_requests[1].param("page") == "page_AAAAAGiu8wAAAAAAaK_QgB=="
    assert {seen.headers["authorization"] for seen in server.requests} == {f"Bearer {CANARY}"}
    costs_total = pulled(source, "openai_costs")
    assert (costs_total["rows"], costs_total["reported_cost_nanos"]) == (54, 43_919_060_600)
    assert costs_total["cost_nanos"] == 43_919_060_600  # billing lines: the amount is the cost
    assert pulled(source, "openai_usage")["cost_nanos"] == 51_072_706_800

    uploaded = ingest("openai_costs", *(PAGES / f"costs_normal_page{n}.json" for n in (1, 2)))
    assert stored(source=uploaded.source) == costs_total


def anthropic_server(fake_provider):
    usage = paged(pages("usage_report_messages_normal_page1.json", "usage_report_messages_normal_page2.json"))
    august_3 = paged(
        pages("claude_code_usage_2026-08-03_page1.json", "claude_code_usage_2026-08-03_page2.json")
    )
    august_4 = pages("claude_code_usage_2026-08-04.json")[0]

    def handler(seen: Seen) -> Reply:
        if seen.path == "/v1/organizations/usage_report/messages":
            return usage(seen)
        if seen.path == "/v1/organizations/cost_report":
            return Reply(200, pages("cost_report_normal.json")[0])
        if seen.path == "/v1/organizations/usage_report/claude_code":
            day = seen.param("starting_at")
            return (
                august_3(seen)
                if day == "2026-08-03"
                else Reply(200, august_4 if day == "2026-08-04" else NO_MORE)
            )
        return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": seen.path}})

    return fake_provider(handler)


@adapters_required("anthropic_usage", "anthropic_costs", "claude_code_usage")
def test_anthropic_usage_cost_and_claude_code_reports(make_pull_source, fake_provider, ingest):
    server = anthropic_server(fake_provider)
    source = make_pull_source(
        server.url, provider="anthropic", kinds=("anthropic_usage", "anthropic_costs", "claude_code_usage")
    )

    result = pull(source)

    assert result.status == "ok", result.reason
    for seen in server.requests:
        assert (seen.headers["x-api-key"], seen.headers["anthropic-version"]) == (CANARY, "2023-06-01")
        assert "authorization" not in seen.headers
    by_path: dict[str, list[Seen]] = {}
    for seen in server.requests:
        by_path.setdefault(seen.path, []).append(seen)
    messages = by_path["/v1/organizations/usage_report/messages"]
    assert messages[0].query == {
        "starting_at": ["2026-08-03T00:00:00Z"],
        "ending_at": ["2026-08-07T00:00:00Z"],
        "bucket_width": ["1d"],
        "limit": ["31"],
        "group_by[]": [
            "api_key_id",
            "workspace_id",
            "model",
            "service_tier",
            "context_window",
            "inference_geo",
        ],
    }
    assert messages[1].param("page") == "page_MjAyNi0wOC0wNVQwMDowMDowMFo="
    (cost,) = by_path["/v1/organizations/cost_report"]
    assert cost.query == {
        "starting_at": ["2026-08-03T00:00:00Z"],
        "ending_at": ["2026-08-07T00:00:00Z"],
        "bucket_width": ["1d"],
        "limit": ["31"],
        "group_by[]": ["workspace_id", "description"],
    }
    claude_code = by_path["/v1/organizations/usage_report/claude_code"]
    assert [(seen.param("starting_at"), seen.param("page")) for seen in claude_code] == [
        ("2026-08-03", None),
        ("2026-08-03", "page_Y3Vyc29yOjI="),
        ("2026-08-04", None),
        ("2026-08-05", None),
        ("2026-08-06", None),
    ]
    assert {seen.param("limit") for seen in claude_code} == {"1000"}

    usage = pulled(source, "anthropic_usage")
    assert (
        usage["rows"],
        usage["input_uncached_tokens"],
        usage["cache_read_tokens"],
        usage["cache_write_5m_tokens"],
        usage["cache_write_1h_tokens"],
        usage["output_tokens"],
    ) == (18, 25_231_054, 23_446_454, 648_856, 81_178, 3_107_863)
    costs = pulled(source, "anthropic_costs")
    assert (costs["rows"], costs["reported_cost_nanos"], costs["cost_nanos"]) == (
        69,
        215_481_706_190,
        215_481_706_190,
    )
    code = pulled(source, "claude_code_usage")
    assert (code["rows"], code["reported_cost_nanos"]) == (7, 10_867_000_000)

    # The same pages uploaded give the same figures: one path for every source.
    for kind, names in {
        "anthropic_usage": [
            "usage_report_messages_normal_page1.json",
            "usage_report_messages_normal_page2.json",
        ],
        "anthropic_costs": ["cost_report_normal.json"],
        "claude_code_usage": [
            "claude_code_usage_2026-08-03_page1.json",
            "claude_code_usage_2026-08-03_page2.json",
            "claude_code_usage_2026-08-04.json",
        ],
    }.items():
        uploaded = ingest(kind, *(PAGES / name for name in names), source=f"upload-{kind}")
        assert stored(source=uploaded.source) == pulled(source, kind), kind

    cursors = dict(PullEndpoint.objects.filter(pull_source=source).values_list("kind", "cursor"))
    assert cursors == dict.fromkeys(
        ("anthropic_usage", "anthropic_costs", "claude_code_usage"), dt.datetime(2026, 8, 5, tzinfo=dt.UTC)
    )


@adapters_required("anthropic_usage", "anthropic_costs", "claude_code_usage")
def test_claude_code_is_asked_one_day_at_a_time_from_its_cursor(make_pull_source, fake_provider):
    server = anthropic_server(fake_provider)
    source = make_pull_source(server.url, provider="anthropic", kinds=("claude_code_usage",))
    pull(source)
    server.requests.clear()

    pull(source, now=NOW + dt.timedelta(days=1))

    assert [seen.param("starting_at") for seen in server.requests] == [
        "2026-08-05",
        "2026-08-06",
        "2026-08-07",
    ]
    assert PullEndpoint.objects.get(pull_source=source).cursor == dt.datetime(2026, 8, 6, tzinfo=dt.UTC)
