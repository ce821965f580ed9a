"""OpenAI Admin API: Usage (completions) and Costs (FORMATS.md §1.1, §1.3).

Admin key as `Authorization: Bearer`; unix-second `start_time` (inclusive) / `end_time` (exclusive);
`bucket_width=1d`; `limit` counts buckets; repeated `group_by`; `page` = the previous `next_page`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from apps.ingestion.credentials import Secret
from apps.ingestion.providers.base import Endpoint, Provider, Window


@dataclass(frozen=True)
class OpenAIBuckets(Endpoint):
    def params(self, window: Window) -> list[tuple[str, str]]:
        return [
            ("start_time", str(int(window.start.timestamp()))),
            ("end_time", str(int(window.end.timestamp()))),
            ("bucket_width", "1d"),
            ("limit", str(self.max_buckets)),
            *self._group_params(),
        ]

    def bucket_ends(self, page: dict, window: Window) -> list[dt.datetime]:
        ends = []
        for bucket in page.get("data") or ():
            end = bucket.get("end_time") if isinstance(bucket, dict) else None
            if isinstance(end, int) and not isinstance(end, bool):
                ends.append(dt.datetime.fromtimestamp(end, tz=dt.UTC))
        return ends


class OpenAIProvider(Provider):
    def auth_headers(self, secret: Secret) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret.reveal()}"}


OPENAI = OpenAIProvider(
    name="openai",
    base_url="https://api.openai.com",
    endpoints=(
        OpenAIBuckets(
            kind="openai_usage",
            path="/v1/organization/usage/completions",
            max_buckets=31,
            # Every grouping the API offers: the finest grain keeps project, user and key attribution.
            group_by=("project_id", "user_id", "api_key_id", "model", "batch", "service_tier"),
        ),
        OpenAIBuckets(
            kind="openai_costs",
            path="/v1/organization/costs",
            max_buckets=31,  # the API allows 180; 31 keeps windows (and saved progress) like the others
            group_by=("project_id", "line_item"),
        ),
    ),
)
