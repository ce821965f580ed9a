"""Pull tests: a fake provider on 127.0.0.1, fast retry settings, a canary admin key, a fixed clock.

The fixed "now" is 2026-08-06 12:00 UTC: the shared sample pages hold the buckets of 3-5 August, so a
pull with a 3-day backfill asks for [3 Aug, 7 Aug) and, with buckets settled after 24 hours, may move
its cursor to the end of 4 August's bucket (5 August 00:00).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apps.ingestion import pulls
from apps.ingestion.adapters import ADAPTERS
from apps.ingestion.models import PullSource
from tests.conftest import FIXTURES
from tests.ingestion.pulls.fakeprovider import FakeProvider, Reply, Seen

CANARY = "sk-admin-CANARY-5c1e9a7b3d2f4e6a8b0c1d3e5f7a9b2c"
KEY_A = "RcV4b8hHOZVxug2EPd2jtdjlwx68rP--un1uoBrZwH4="  # test-only Fernet keys
KEY_B = "NEnxO_Wxv2CbU9ydsZdFFZHzyqPyC7DUk5IBXFH1gns="
NOW = dt.datetime(2026, 8, 6, 12, 0, tzinfo=dt.UTC)
PAGES = Path(__file__).resolve().parent / "pages"
OPENAI_USAGE_PAGES = sorted((FIXTURES / "openai_admin_usage").glob("completions_usage_normal_page*.json"))


def adapters_required(*kinds: str) -> pytest.MarkDecorator:
    missing = [kind for kind in kinds if kind not in ADAPTERS]
    return pytest.mark.skipif(bool(missing), reason=f"adapter not registered yet: {', '.join(missing)}")


@pytest.fixture(autouse=True)
def pull_settings(settings, tmp_path):
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    settings.SPENDWATCH_UPLOAD_DIR = tmp_path / "uploads"
    settings.SPENDWATCH_PULL_REQUESTS_PER_SECOND = 1000.0
    settings.SPENDWATCH_PULL_RATE_MARGIN_MS = 0
    settings.SPENDWATCH_PULL_BACKOFF_BASE_MS = 50
    settings.SPENDWATCH_PULL_BACKOFF_CAP_MS = 400
    settings.SPENDWATCH_PULL_MAX_ATTEMPTS = 8
    settings.SPENDWATCH_PULL_MAX_WAIT_SECONDS = 30
    settings.SPENDWATCH_PULL_TIMEOUT_SECONDS = 1
    settings.SPENDWATCH_PULL_SETTLE_HOURS = 24
    settings.SPENDWATCH_PULL_MAX_PAGES = 50
    return settings


@pytest.fixture
def fake_provider() -> Iterator[Callable[[Callable[[Seen], Reply]], FakeProvider]]:
    started: list[FakeProvider] = []

    def start(handler: Callable[[Seen], Reply]) -> FakeProvider:
        server = FakeProvider(handler).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def make_pull_source(acme) -> Callable[..., PullSource]:
    def make(
        url: str,
        *,
        provider: str = "openai",
        kinds: tuple[str, ...] = ("openai_usage",),
        name: str | None = None,
        credential: str = CANARY,
        backfill_days: int = 3,
    ) -> PullSource:
        return pulls.pull_source_create(
            organisation=acme,
            name=name or f"{provider}-admin",
            provider=provider,
            credential=credential,
            kinds=kinds,
            base_url=url,
            backfill_days=backfill_days,
        )

    return make


def pull(source: PullSource, **kwargs) -> pulls.PullResult:
    return pulls.pull_run(source_id=source.pk, now=kwargs.pop("now", NOW), **kwargs)
