"""Anthropic Admin API: messages usage report, cost report and Claude Code usage (FORMATS.md §2).

Admin key as `x-api-key` with `anthropic-version: 2023-06-01`; RFC 3339 `starting_at` / `ending_at`;
`bucket_width=1d`; `limit` counts buckets; `group_by[]`; `page` = the previous `next_page`. The Claude
Code report takes one UTC day (`starting_at=YYYY-MM-DD`) per request sequence and pages over actors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from apps.ingestion.credentials import Secret
from apps.ingestion.providers.base import DAY, Endpoint, Provider, Window, rfc3339

API_VERSION = "2023-06-01"


@dataclass(frozen=True)
class AnthropicBuckets(Endpoint):
    group_by_param: str = "group_by[]"

    def params(self, window: Window) -> list[tuple[str, str]]:
        return [
            ("starting_at", rfc3339(window.start)),
            ("ending_at", rfc3339(window.end)),
            ("bucket_width", "1d"),
            ("limit", str(self.max_buckets)),
            *self._group_params(),
        ]

    def bucket_ends(self, page: dict, window: Window) -> list[dt.datetime]:
        ends = []
        for bucket in page.get("data") or ():
            end = bucket.get("ending_at") if isinstance(bucket, dict) else None
            if isinstance(end, str):
                try:
                    parsed = dt.datetime.fromisoformat(end)
                except ValueError:
                    continue
                ends.append(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))
        return ends


@dataclass(frozen=True)
class ClaudeCodeDays(Endpoint):
    page_size: int = 1000

    def windows(self, start: dt.datetime, end: dt.datetime) -> Iterator[Window]:
        while start < end:
            yield Window(start, start + DAY)
            start += DAY

    def params(self, window: Window) -> list[tuple[str, str]]:
        return [("starting_at", window.start.strftime("%Y-%m-%d")), ("limit", str(self.page_size))]

    def bucket_ends(self, page: dict, window: Window) -> list[dt.datetime]:
        return [window.end]  # the report is one day, asked for explicitly


class AnthropicProvider(Provider):
    def auth_headers(self, secret: Secret) -> dict[str, str]:
        return {"x-api-key": secret.reveal(), "anthropic-version": API_VERSION}


ANTHROPIC = AnthropicProvider(
    name="anthropic",
    base_url="https://api.anthropic.com",
    endpoints=(
        AnthropicBuckets(
            kind="anthropic_usage",
            path="/v1/organizations/usage_report/messages",
            max_buckets=31,
            # `speed` needs a beta header and account ids are not on every plan: left out.
            group_by=(
                "api_key_id",
                "workspace_id",
                "model",
                "service_tier",
                "context_window",
                "inference_geo",
            ),
        ),
        AnthropicBuckets(
            kind="anthropic_costs",
            path="/v1/organizations/cost_report",
            max_buckets=31,
            group_by=("workspace_id", "description"),
        ),
        ClaudeCodeDays(
            kind="claude_code_usage",
            path="/v1/organizations/usage_report/claude_code",
            max_buckets=1,
        ),
    ),
)
