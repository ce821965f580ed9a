"""Writes for digests: send a week's digests with the sent ledger, send what is due, preferences.

The ledger protocol, per recipient and week (DigestDelivery, unique on user + week):

1. Claim: insert the row as CLAIMED (the database refuses a second one), or take over a row that
   FAILED earlier (below the attempt limit) or whose CLAIMED lease expired (its run died before the
   hand-over: nothing can have been sent). Anything else - SENT, SENDING, UNCERTAIN, a live claim - is
   left alone, so a re-run or a second worker never builds, let alone sends, the same digest twice.
2. Build the email (selectors, charts, templates). A failure here records FAILED: retried next run.
3. Open the SMTP connection; a failure records FAILED (nothing was handed over).
4. Mark SENDING - only if this run still holds the claim - then hand the message over.
5. SENT. An explicit refusal from the server (an SMTP error reply) records FAILED: it did not take the
   message, so a later run retries it. Any other error during the hand-over (a broken connection, a
   timeout) records UNCERTAIN: the server may have taken it, and it is never sent again automatically.
   A run that dies between 4 and 5 leaves SENDING; the next run that meets it after the lease marks it
   UNCERTAIN for the same reason.

Each step commits on its own (no transaction spans the run), so what the ledger says survives a crash.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import get_connection
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.digests import selectors
from apps.digests.charts import ChartRenderer
from apps.digests.emails import DigestEmail, build_mime, message_id, render_digest
from apps.digests.models import DeliveryStatus, DigestDelivery, DigestPreference, DigestSchedule
from apps.digests.selectors import OrganisationWeek, Recipient
from apps.digests.tokens import user_id_from_token
from apps.digests.weeks import IsoWeek, due_week
from apps.org.models import Organisation

logger = logging.getLogger(__name__)

# Replies in which the mail server says it did not take the message: safe to retry.
REFUSED = (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, smtplib.SMTPNotSupportedError)


@dataclass
class SendSummary:
    organisation: str
    week: str
    recipients: int = 0
    sent: int = 0
    skipped: int = 0  # the ledger says sent, being sent elsewhere, uncertain, or out of attempts
    failed: int = 0
    uncertain: int = 0
    dry_run: bool = False
    files: list[str] = field(default_factory=list)
    charts: str = ""  # why charts were left out, if they were

    def as_dict(self) -> dict:
        return {
            "organisation": self.organisation,
            "week": self.week,
            "recipients": self.recipients,
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "uncertain": self.uncertain,
            "dry_run": self.dry_run,
            "files": self.files,
            "charts": self.charts or "ok",
        }


def schedule_for(organisation: Organisation) -> DigestSchedule:
    """The organisation's schedule; the defaults (Monday 08:00, enabled) when it has none stored."""
    return DigestSchedule.objects.filter(organisation=organisation).first() or DigestSchedule(
        organisation=organisation
    )


def chart_renderer() -> ChartRenderer:
    return ChartRenderer(settings.SPENDWATCH_CHROMIUM_PATH)


def send_due_digests(*, now: dt.datetime | None = None) -> list[SendSummary]:
    """Send every organisation's digests that are due at `now` (the hourly beat calls this)."""
    now = now or timezone.now()
    window = dt.timedelta(hours=settings.SPENDWATCH_DIGEST_SEND_WINDOW_HOURS)
    summaries = []
    with chart_renderer() as renderer:
        for organisation in Organisation.objects.order_by("pk"):
            schedule = schedule_for(organisation)
            if not schedule.enabled:
                continue
            week = due_week(
                time_zone=organisation.time_zone,
                weekday=schedule.weekday,
                at=schedule.send_time,
                now=now,
                window=window,
            )
            if week is not None:
                summaries.append(send_digests(organisation=organisation, week=week, renderer=renderer))
    return summaries


def send_digests(
    *,
    organisation: Organisation,
    week: IsoWeek,
    dry_run: bool = False,
    out_dir: Path | None = None,
    renderer: ChartRenderer | None = None,
) -> SendSummary:
    """Send the organisation's digests for `week` to everyone subscribed who has not had theirs.

    Dry run: write each digest as an .eml file under out_dir/<organisation>/<week>/, send nothing and
    touch no ledger row.
    """
    summary = SendSummary(organisation=organisation.slug, week=str(week), dry_run=dry_run)
    people = selectors.recipients(organisation.pk)
    summary.recipients = len(people)
    if not people:
        return summary
    context = OrganisationWeek(organisation, week)
    own_renderer = renderer is None
    renderer = renderer or chart_renderer()
    try:
        for recipient in people:
            if dry_run:
                summary.files.append(str(_write_eml(recipient, context, renderer, out_dir, summary)))
            else:
                _send_one(recipient, context, renderer, summary)
    finally:
        if own_renderer:
            renderer.close()
    return summary


def _email(recipient: Recipient, context: OrganisationWeek, renderer: ChartRenderer, summary: SendSummary):
    digest = selectors.build_digest(recipient, context)
    rendered = render_digest(digest, renderer)
    if rendered.charts_note and not summary.charts:
        summary.charts = renderer.reason or "some charts failed"
    return digest, build_mime(digest, rendered, from_email=settings.DEFAULT_FROM_EMAIL)


def _write_eml(
    recipient: Recipient,
    context: OrganisationWeek,
    renderer: ChartRenderer,
    out_dir: Path | None,
    summary: SendSummary,
) -> Path:
    _, mime = _email(recipient, context, renderer, summary)
    folder = (
        Path(out_dir or settings.SPENDWATCH_DIGEST_DRY_RUN_DIR)
        / context.organisation.slug
        / str(context.week)
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recipient.user_id}-{_file_safe(recipient.email)}.eml"
    path.write_bytes(mime.as_bytes())
    return path


def _file_safe(text: str) -> str:
    return "".join(char if char.isalnum() or char in "@.-_" else "_" for char in text)[:100]


def _claim(recipient: Recipient, context: OrganisationWeek) -> DigestDelivery | None:
    """This run's claim on the recipient's digest of the week, or None when it is not ours to send.

    Leases run on the wall clock (not the run's `now`, which only decides what is due), so runs
    started at different times agree on which claims have expired.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    lease = now + _lease()
    week = str(context.week)
    try:
        with transaction.atomic():
            return DigestDelivery.objects.create(
                organisation=context.organisation,
                user_id=recipient.user_id,
                week=week,
                email=recipient.email,
                role=recipient.role,
                status=DeliveryStatus.CLAIMED,
                attempts=1,
                claim_token=token,
                claimed_until=lease,
            )
    except IntegrityError:
        pass  # the row exists: see what state it is in
    rows = DigestDelivery.objects.filter(user_id=recipient.user_id, week=week)
    rows.filter(status=DeliveryStatus.SENDING, claimed_until__lt=now).update(
        status=DeliveryStatus.UNCERTAIN,
        claim_token="",
        error="the run sending it stopped during the hand-over to the mail server; not sent again",
    )
    retry = Q(status=DeliveryStatus.FAILED, attempts__lt=settings.SPENDWATCH_DIGEST_MAX_ATTEMPTS)
    abandoned = Q(status=DeliveryStatus.CLAIMED, claimed_until__lt=now)
    taken = rows.filter(retry | abandoned).update(
        status=DeliveryStatus.CLAIMED,
        attempts=F("attempts") + 1,
        claim_token=token,
        claimed_until=lease,
        email=recipient.email,
        role=recipient.role,
    )
    return rows.get() if taken else None


def _record(delivery: DigestDelivery, status: str, error: BaseException | None = None, **fields) -> None:
    DigestDelivery.objects.filter(pk=delivery.pk, claim_token=delivery.claim_token).update(
        status=status, error=_error_text(error) if error else "", claimed_until=None, **fields
    )


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _send_one(
    recipient: Recipient,
    context: OrganisationWeek,
    renderer: ChartRenderer,
    summary: SendSummary,
) -> None:
    delivery = _claim(recipient, context)
    if delivery is None:
        summary.skipped += 1
        return
    try:
        digest, mime = _email(recipient, context, renderer, summary)
    except Exception as error:
        logger.exception("digest %s for user %s could not be built", context.week, recipient.user_id)
        _record(delivery, DeliveryStatus.FAILED, error)
        summary.failed += 1
        return
    connection = get_connection(timeout=settings.SPENDWATCH_DIGEST_SMTP_TIMEOUT_SECONDS)
    try:
        connection.open()
    except Exception as error:
        _record(delivery, DeliveryStatus.FAILED, error)
        summary.failed += 1
        return
    try:
        # The last moment nothing has left: from here on, a crash means "maybe delivered".
        handed_over = DigestDelivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.CLAIMED, claim_token=delivery.claim_token
        ).update(
            status=DeliveryStatus.SENDING,
            message_id=message_id(digest),
            claimed_until=timezone.now() + _lease(),
        )
        if not handed_over:
            summary.skipped += 1  # our claim expired and another run took it over: it sends, not us
            return
        try:
            connection.send_messages([DigestEmail(mime)])
        except REFUSED as error:
            _record(delivery, DeliveryStatus.FAILED, error)
            summary.failed += 1
        except Exception as error:
            logger.warning(
                "digest %s to user %s: outcome unknown: %s", context.week, recipient.user_id, error
            )
            _record(delivery, DeliveryStatus.UNCERTAIN, error)
            summary.uncertain += 1
        else:
            _record(delivery, DeliveryStatus.SENT, sent_at=timezone.now())
            summary.sent += 1
    finally:
        try:
            connection.close()
        except Exception:
            logger.warning("closing the SMTP connection failed", exc_info=True)


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.SPENDWATCH_DIGEST_CLAIM_SECONDS)


# --- preferences ---------------------------------------------------------------------------------------


def preference_set(*, user, subscribed: bool, via: str) -> None:
    DigestPreference.objects.update_or_create(
        user=user, defaults={"subscribed": subscribed, "changed_via": via[:40]}
    )


def unsubscribe_with_token(*, token: str):
    """Turn digests off for the user the token names; that user, or None for a token we did not make."""
    user_id = user_id_from_token(token)
    if user_id is None:
        return None
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    preference_set(user=user, subscribed=False, via="unsubscribe link")
    return user
