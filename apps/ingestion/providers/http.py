"""GET a provider admin API page: the shared rate limit, retries with backoff, and the errors not to retry.

Retried: 429 and 5xx (after `Retry-After` when the provider sends one, in seconds or as an HTTP date;
otherwise exponential backoff with jitter, capped), timeouts, connection resets and truncated bodies.
Not retried: 401/403 (CredentialsRejected), a 429 that says a spend limit or quota was reached and gives
no Retry-After (ProviderLimitReached: asking again cannot help until someone raises the limit), and any
other 4xx (ProviderError).

Messages built here quote the provider's error text (shortened, with the key redacted should a provider
ever echo it) and never a request header: the key travels only in headers.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
import orjson
from django.conf import settings

from apps.ingestion import ratelimit
from apps.ingestion.credentials import Secret

logger = logging.getLogger(__name__)

USER_AGENT = "SpendWatch (usage and cost pulls)"
MESSAGE_CHARS = 300

# A 429 that is a cap, not a rate: OpenAI's "insufficient_quota" / "exceeded your current quota",
# spend or usage limits, budgets, credit balance. Ordinary rate limits ("Rate limit reached for ...
# requests per min") do not match: they are retried.
SPEND_CAP = re.compile(
    r"insufficient_quota|quota|spend(?:ing)?[ _-]?(?:limit|cap)|usage[ _-]?limit|budget|credit balance|billing",
    re.IGNORECASE,
)


class ProviderError(Exception):
    """A page could not be fetched; the pull stops and the source is marked failing with this reason."""


class ProviderUnavailable(ProviderError):
    """Still failing (429/5xx/network) after every allowed retry, or the wait asked for is too long."""


class CredentialsRejected(ProviderError):
    """401/403: the key is revoked or lacks the admin scope."""


class ProviderLimitReached(ProviderError):
    """A spend cap or quota 429: not retried."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base: float
    backoff_cap: float
    max_wait: float  # the longest Retry-After honoured in-process; longer waits end the pull

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_attempts=settings.SPENDWATCH_PULL_MAX_ATTEMPTS,
            backoff_base=settings.SPENDWATCH_PULL_BACKOFF_BASE_MS / 1000,
            backoff_cap=settings.SPENDWATCH_PULL_BACKOFF_CAP_MS / 1000,
            max_wait=settings.SPENDWATCH_PULL_MAX_WAIT_SECONDS,
        )

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Exponential, capped, with "equal jitter": between half and all of min(cap, base * 2**retry)."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2**retry)
        return ceiling / 2 + rand() * ceiling / 2


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def provider_message(body: bytes, secret: Secret | None = None) -> str:
    """The provider's error text from an OpenAI or Anthropic error body, shortened and key-free."""
    text = ""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict):
            parts = [str(error.get(name)) for name in ("type", "code", "message") if error.get(name)]
            text = ": ".join(parts)
        elif isinstance(error, str):
            text = error
        elif document.get("message"):
            text = str(document["message"])
    if not text:
        text = body[:MESSAGE_CHARS].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    if secret is not None and secret.reveal() in text:
        text = text.replace(secret.reveal(), secret.hint)
    return text[:MESSAGE_CHARS] or "(no message)"


@dataclass
class ProviderClient:
    """GETs JSON pages from one provider account, one request at a time, under the key's shared rate."""

    base_url: str
    headers: dict[str, str]
    secret: Secret
    limiter_key: str
    policy: RetryPolicy = field(default_factory=RetryPolicy.from_settings)
    sleep: Callable[[float], None] = time.sleep
    transport: httpx2.BaseTransport | None = None

    def __post_init__(self) -> None:
        timeout = settings.SPENDWATCH_PULL_TIMEOUT_SECONDS
        self._client = httpx2.Client(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers},
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=self.transport,
            follow_redirects=False,  # a redirect would carry the key to wherever it points
        )

    def __repr__(self) -> str:
        return f"ProviderClient({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_page(self, path: str, params: list[tuple[str, str]]) -> tuple[dict, bytes]:
        """One page as (parsed JSON object, raw body), retried as the module docstring says."""
        last_problem = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            ratelimit.acquire(self.limiter_key, sleep=self.sleep)
            try:
                response = self._client.get(path, params=params)
                body = response.content
            except httpx2.TransportError as error:  # timeouts, refused or reset connections, cut bodies
                last_problem = f"{type(error).__name__} fetching {path}"
                delay = self.policy.backoff(attempt - 1)
            else:
                status = response.status_code
                if status == 200:
                    document = _json_object(body)
                    if document is not None:
                        return document, body
                    last_problem = f"200 from {path} with a body that is not a JSON object"
                    delay = self.policy.backoff(attempt - 1)
                elif status in (401, 403):
                    raise CredentialsRejected(f"{status} from {path}: {provider_message(body, self.secret)}")
                elif status == 429 or status >= 500:
                    message = provider_message(body, self.secret)
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
                    if status == 429 and retry_after is None and SPEND_CAP.search(message):
                        raise ProviderLimitReached(f"429 from {path}: {message}")
                    last_problem = f"{status} from {path}: {message}"
                    delay = retry_after if retry_after is not None else self.policy.backoff(attempt - 1)
                else:
                    raise ProviderError(f"{status} from {path}: {provider_message(body, self.secret)}")
            if attempt == self.policy.max_attempts:
                break
            if delay > self.policy.max_wait:
                raise ProviderUnavailable(
                    f"{last_problem}; the provider asked to wait {delay:.0f} s, more than the "
                    f"{self.policy.max_wait:.0f} s a pull waits (will try again at the next scheduled pull)"
                )
            logger.warning(
                "%s (attempt %d of %d); retrying in %.2f s",
                last_problem,
                attempt,
                self.policy.max_attempts,
                delay,
            )
            self.sleep(delay)
        raise ProviderUnavailable(f"{last_problem}; gave up after {self.policy.max_attempts} attempts")


def _json_object(body: bytes) -> dict | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None
