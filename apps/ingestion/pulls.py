"""Scheduled pulls from provider admin APIs: configure a pull source, find the due ones, run one pull.

A pull fetches pages and hands them to the same pipeline as an upload: each page is kept as a raw
payload file and one ingestion run per window reads them with the endpoint's adapter
(services.ingest_files). Nothing here reads a usage record; it reads only the page envelope
(`has_more`, `next_page`, bucket ends).

Order of writes in one window, and why it is safe to crash anywhere:
1. fetch every page of the window (nothing written yet but the kept page files);
2. ingest them in one run: rows are upserted on their natural key, so a repeated window changes nothing;
3. only then move the endpoint's cursor, and only to the end of the last bucket that is complete
   (ended at least SPENDWATCH_PULL_SETTLE_HOURS ago). A crash before 3 repeats the window next time.
A window that cannot be fetched completely is not ingested and the cursor stays where it was.

One pull per source at a time: the worker holds a lease on the PullSource row, claimed by one
conditional UPDATE (atomic on SQLite and PostgreSQL alike), renewed after every page and expiring on
its own if the worker dies.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.accounts.scoping import Viewer
from apps.ingestion import credentials, services
from apps.ingestion.models import PullEndpoint, PullSource, PullStatus, RunStatus
from apps.ingestion.providers import Endpoint, Provider, Window, get_provider
from apps.ingestion.providers.base import DAY, ceil_day, floor_day
from apps.ingestion.providers.http import (
    CredentialsRejected,
    ProviderClient,
    ProviderError,
    ProviderLimitReached,
)
from apps.org.models import Organisation

logger = logging.getLogger(__name__)

# Sources in these states wait for a person (a new key, a raised limit, or `pull_source NAME`).
WAITING_FOR_A_PERSON = (PullStatus.BLOCKED_BY_PROVIDER_LIMIT, PullStatus.CREDENTIALS_REJECTED)


class PullFailed(Exception):
    """A window could not be ingested (its run failed, or the page envelope made no sense)."""


class LeaseLost(Exception):
    """Another worker took the source over (our lease expired): stop without writing more."""


# --- configuration ------------------------------------------------------------------------------


@sensitive_variables("credential")  # error reports list frames' locals: never the key
def pull_source_create(
    *,
    organisation: Organisation,
    name: str,
    provider: str,
    credential: str,
    kinds: Iterable[str] | None = None,
    base_url: str = "",
    interval_minutes: int = 60,
    backfill_days: int = 30,
    enabled: bool = True,
) -> PullSource:
    """A new pull source with its endpoints (all the provider's unless `kinds` names some)."""
    spec = get_provider(provider)
    wanted = list(kinds) if kinds is not None else [endpoint.kind for endpoint in spec.endpoints]
    for kind in wanted:
        spec.endpoint(kind)  # refuse an endpoint the provider does not have
    with transaction.atomic():
        source = PullSource(
            organisation=organisation,
            name=name,
            provider=provider,
            base_url=base_url,
            interval_minutes=interval_minutes,
            backfill_days=backfill_days,
            enabled=enabled,
        )
        _put_credential(source, credential)
        source.save()
        endpoints_set(source, wanted)
    return source


def endpoints_set(source: PullSource, kinds: Iterable[str]) -> None:
    """Pull exactly these endpoints; a removed endpoint keeps its data source and rows, loses its cursor."""
    spec = get_provider(source.provider)
    kinds = list(dict.fromkeys(kinds))
    for kind in kinds:
        spec.endpoint(kind)
        if not source.endpoints.filter(kind=kind).exists():
            data_source = services.source_get_or_create(
                organisation=source.organisation, name=f"{source.name}:{kind}", format=kind
            )
            PullEndpoint.objects.create(pull_source=source, kind=kind, data_source=data_source)
    source.endpoints.exclude(kind__in=kinds).delete()


@sensitive_variables("credential")
def pull_source_update(
    source: PullSource,
    *,
    kinds: Iterable[str],
    base_url: str,
    interval_minutes: int,
    backfill_days: int,
    enabled: bool,
    credential: str = "",
) -> None:
    """Change a source's settings; a non-empty `credential` replaces the stored key."""
    with transaction.atomic():
        source.base_url = base_url
        source.interval_minutes = interval_minutes
        source.backfill_days = backfill_days
        source.enabled = enabled
        source.save(update_fields=["base_url", "interval_minutes", "backfill_days", "enabled"])
        endpoints_set(source, kinds)
        if credential.strip():
            credential_replace(source, credential)


@sensitive_variables("credential")
def credential_replace(source: PullSource, credential: str) -> None:
    """Store a new key; a source that was blocked or rejected becomes due again."""
    _put_credential(source, credential)
    source.status = PullStatus.OK
    source.status_reason = ""
    source.status_at = timezone.now()
    source.next_pull_at = None
    source.save(
        update_fields=[
            "credential_ciphertext",
            "credential_hint",
            "credential_fingerprint",
            "status",
            "status_reason",
            "status_at",
            "next_pull_at",
        ]
    )


@sensitive_variables("plaintext")
def _put_credential(source: PullSource, plaintext: str) -> None:
    plaintext = plaintext.strip()
    source.credential_ciphertext = credentials.encrypt(plaintext)
    source.credential_hint = credentials.hint_for(plaintext)
    source.credential_fingerprint = credentials.fingerprint(plaintext)


def credentials_reencrypt() -> int:
    """Re-encrypt every stored credential with the first key (after a new key was put first).

    All or nothing: every credential is re-encrypted in memory first, so one that cannot be decrypted
    (CredentialError, naming its source) stops the rotation before anything is written.
    """
    sources = PullSource.objects.only("pk", "name", "credential_ciphertext").order_by("pk")
    rotated = {
        source.pk: credentials.reencrypt(source.credential_ciphertext, source_name=source.name)
        for source in sources
    }
    with transaction.atomic():
        for pk, ciphertext in rotated.items():
            PullSource.objects.filter(pk=pk).update(credential_ciphertext=ciphertext)
    return len(rotated)


def pull_sources_for(viewer: Viewer) -> QuerySet[PullSource]:
    """The organisation's pull sources, for CIO/FinOps only (404 for anyone else)."""
    if not viewer.sees_organisation:
        raise Http404("no such page")
    return (
        PullSource.objects.filter(organisation_id=viewer.organisation_id)
        .prefetch_related("endpoints")
        .order_by("name")
    )


def pull_source_get(viewer: Viewer, *, source_id: int) -> PullSource:
    source = pull_sources_for(viewer).filter(pk=source_id).first()
    if source is None:
        raise Http404("no such pull source")
    return source


# --- scheduling -----------------------------------------------------------------------------------


def due_pull_ids(*, now: dt.datetime | None = None) -> list[int]:
    """Sources due for a pull; each due slot is claimed (next_pull_at moved on) so it is enqueued once."""
    now = now or timezone.now()
    due = (
        PullSource.objects.filter(enabled=True)
        .exclude(status__in=WAITING_FOR_A_PERSON)
        .filter(Q(next_pull_at__isnull=True) | Q(next_pull_at__lte=now))
        .values_list("pk", "next_pull_at", "interval_minutes")
    )
    claimed = []
    for pk, next_pull_at, interval in due:
        slot = Q(next_pull_at__isnull=True) if next_pull_at is None else Q(next_pull_at=next_pull_at)
        moved = PullSource.objects.filter(slot, pk=pk).update(
            next_pull_at=now + dt.timedelta(minutes=interval)
        )
        if moved:
            claimed.append(pk)
    return claimed


# --- one pull -----------------------------------------------------------------------------------


@dataclass
class EndpointResult:
    kind: str
    pages: int = 0
    runs: list[int] = field(default_factory=list)
    cursor: dt.datetime | None = None
    error: str = ""


@dataclass
class PullResult:
    source_id: int
    status: str
    reason: str = ""
    busy: bool = False
    endpoints: list[EndpointResult] = field(default_factory=list)

    def summary(self) -> dict:
        """What the task returns and the command prints: no credential, only counts and states."""
        return {
            "source": self.source_id,
            "status": "busy" if self.busy else self.status,
            "reason": self.reason,
            "endpoints": [
                {
                    "kind": endpoint.kind,
                    "pages": endpoint.pages,
                    "runs": endpoint.runs,
                    "cursor": endpoint.cursor.isoformat() if endpoint.cursor else None,
                    "error": endpoint.error,
                }
                for endpoint in self.endpoints
            ],
        }


def pull_run(
    *,
    source_id: int,
    backfill_days: int | None = None,
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx2.BaseTransport | None = None,
) -> PullResult:
    """Pull every endpoint of a source once; safe to call at any time and from any number of workers.

    `backfill_days` re-pulls from that many days before today whatever the cursors say (re-pulled
    rows are duplicates or replacements, never double counts); the cursors never move backwards.
    Raises credentials.CredentialError (after marking the source) when the key cannot be decrypted.
    """
    now = now or timezone.now()
    token = _lease_claim(source_id)
    if token is None:
        status = PullSource.objects.filter(pk=source_id).values_list("status", flat=True).first()
        if status is None:
            raise PullSource.DoesNotExist(f"no pull source {source_id}")
        return PullResult(source_id, status or "", "another pull of this source is running", busy=True)
    try:
        source = PullSource.objects.select_related("organisation").get(pk=source_id)
        return _pull(source, token, backfill_days=backfill_days, now=now, sleep=sleep, transport=transport)
    finally:
        PullSource.objects.filter(pk=source_id, lease_token=token).update(
            lease_token="", lease_expires_at=None
        )


def _pull(
    source: PullSource,
    token: str,
    *,
    backfill_days: int | None,
    now: dt.datetime,
    sleep: Callable[[float], None],
    transport: httpx2.BaseTransport | None,
) -> PullResult:
    PullSource.objects.filter(pk=source.pk).update(
        last_pull_at=now, next_pull_at=now + dt.timedelta(minutes=source.interval_minutes)
    )
    try:
        secret = credentials.decrypt(source.credential_ciphertext, source_name=source.name)
    except credentials.CredentialError as error:
        _status_set(source, PullStatus.FAILING, str(error))
        logger.error("pull source %r: %s", source.name, error)
        raise
    provider = get_provider(source.provider)
    client = ProviderClient(
        base_url=source.base_url or provider.base_url,
        headers=provider.auth_headers(secret),
        secret=secret,
        limiter_key=source.credential_fingerprint,
        sleep=sleep,
        transport=transport,
    )
    result = PullResult(source.pk, PullStatus.OK)
    failures: list[str] = []
    with client:
        for endpoint_row in source.endpoints.select_related("data_source").order_by("kind"):
            outcome = EndpointResult(endpoint_row.kind)
            result.endpoints.append(outcome)
            try:
                _pull_endpoint(
                    source,
                    token,
                    provider,
                    endpoint_row,
                    client,
                    outcome,
                    backfill_days=backfill_days,
                    now=now,
                )
            except CredentialsRejected as error:
                outcome.error = str(error)
                result.status, result.reason = PullStatus.CREDENTIALS_REJECTED, str(error)
                break
            except ProviderLimitReached as error:
                outcome.error = str(error)
                result.status, result.reason = PullStatus.BLOCKED_BY_PROVIDER_LIMIT, str(error)
                break
            except LeaseLost:
                outcome.error = "another worker took this source over"
                result.status, result.reason = PullStatus.FAILING, outcome.error
                return result  # the other worker owns the source's status now
            except (ProviderError, PullFailed) as error:
                # One endpoint's outage (the costs API has had some) must not stop the others.
                outcome.error = str(error)
                failures.append(f"{endpoint_row.kind}: {error}")
            except Exception as error:
                # A defect or an unreadable payload directory: say so on the source, then fail loudly.
                _status_set(
                    source, PullStatus.FAILING, f"{endpoint_row.kind}: {type(error).__name__}: {error}"
                )
                raise
    if result.status == PullStatus.OK and failures:
        result.status, result.reason = PullStatus.FAILING, "; ".join(failures)
    _status_set(source, result.status, result.reason, succeeded=result.status == PullStatus.OK)
    if result.status == PullStatus.BLOCKED_BY_PROVIDER_LIMIT:
        # The alert: the source waits for a person, who must raise the limit and pull again.
        logger.error("pull source %r blocked by provider limit: %s", source.name, result.reason)
    elif result.status != PullStatus.OK:
        logger.warning("pull source %r %s: %s", source.name, result.status, result.reason)
    return result


def _pull_endpoint(
    source: PullSource,
    token: str,
    provider: Provider,
    endpoint_row: PullEndpoint,
    client: ProviderClient,
    outcome: EndpointResult,
    *,
    backfill_days: int | None,
    now: dt.datetime,
) -> None:
    endpoint = provider.endpoint(endpoint_row.kind)
    today = floor_day(now)
    days_back = backfill_days if backfill_days is not None else source.backfill_days
    start = today - DAY * days_back
    if backfill_days is None and endpoint_row.cursor is not None:
        start = floor_day(endpoint_row.cursor)
    settled = now - dt.timedelta(hours=settings.SPENDWATCH_PULL_SETTLE_HOURS)
    cursor = endpoint_row.cursor
    outcome.cursor = cursor
    for window in endpoint.windows(start, ceil_day(now)):
        paths, ends = _fetch_window(source, token, endpoint, window, client, outcome)
        run = services.ingest_files(source=endpoint_row.data_source, format=endpoint.kind, paths=paths)
        outcome.runs.append(run.pk)
        if run.status != RunStatus.COMPLETED:
            raise PullFailed(f"run {run.pk} failed: {run.error}")
        complete = [end for end in ends if end <= settled]
        if complete and (cursor is None or max(complete) > cursor):
            cursor = max(complete)
        PullEndpoint.objects.filter(pk=endpoint_row.pk).update(cursor=cursor, last_run=run)
        outcome.cursor = cursor
        logger.info(
            "pulled %s %s %s..%s: %d pages, run %s",
            source.name,
            endpoint.kind,
            window.start.date(),
            window.end.date(),
            len(paths),
            run.pk,
        )


def _fetch_window(
    source: PullSource,
    token: str,
    endpoint: Endpoint,
    window: Window,
    client: ProviderClient,
    outcome: EndpointResult,
) -> tuple[list[Path], list[dt.datetime]]:
    """Every page of one window, kept as payload files; on any failure the kept pages are removed."""
    paths: list[Path] = []
    ends: list[dt.datetime] = []
    seen_cursors: set[str] = set()
    page_cursor: str | None = None
    max_pages = settings.SPENDWATCH_PULL_MAX_PAGES
    try:
        while True:
            if len(paths) >= max_pages:
                raise PullFailed(
                    f"{window.start.date()}..{window.end.date()}: more than {max_pages} pages "
                    "(SPENDWATCH_PULL_MAX_PAGES); stopped instead of paging on"
                )
            params = endpoint.params(window)
            if page_cursor is not None:
                params.append(("page", page_cursor))
            page, body = client.get_page(endpoint.path, params)
            paths.append(
                services.payload_keep(organisation=source.organisation, suffix=".json", chunks=[body])
            )
            outcome.pages += 1
            ends.extend(endpoint.bucket_ends(page, window))
            _lease_renew(source.pk, token)
            if not page.get("has_more"):
                return paths, ends
            page_cursor = page.get("next_page")
            if not isinstance(page_cursor, str) or not page_cursor:
                raise PullFailed(f"{endpoint.path}: has_more is true but next_page is {page_cursor!r}")
            if page_cursor in seen_cursors:
                raise PullFailed(f"{endpoint.path}: the provider returned the same next_page twice")
            seen_cursors.add(page_cursor)
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise


def _status_set(source: PullSource, status: str, reason: str, *, succeeded: bool = False) -> None:
    now = timezone.now()
    changes: dict = {"status": status, "status_reason": reason}
    if status != source.status or reason != source.status_reason:
        changes["status_at"] = now
    if succeeded:
        changes["last_success_at"] = now
    PullSource.objects.filter(pk=source.pk).update(**changes)


# --- the lease ------------------------------------------------------------------------------------


def _lease_claim(source_id: int) -> str | None:
    now = timezone.now()
    token = uuid.uuid4().hex
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    claimed = PullSource.objects.filter(free, pk=source_id).update(
        lease_token=token, lease_expires_at=now + dt.timedelta(seconds=settings.SPENDWATCH_PULL_LEASE_SECONDS)
    )
    return token if claimed else None


def _lease_renew(source_id: int, token: str) -> None:
    renewed = PullSource.objects.filter(pk=source_id, lease_token=token).update(
        lease_expires_at=timezone.now() + dt.timedelta(seconds=settings.SPENDWATCH_PULL_LEASE_SECONDS)
    )
    if not renewed:
        raise LeaseLost(source_id)
