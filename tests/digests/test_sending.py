"""Sending through a real SMTP server on loopback: who gets a digest, exactly once per week whatever is
re-run or crashes, and what a failed send does (TESTPLAN I4)."""

from __future__ import annotations

import io
from email import message_from_bytes, policy

import orjson
import pytest
from django.core.mail.backends.smtp import EmailBackend
from django.core.management import call_command

from apps.digests import services
from apps.digests.models import DeliveryStatus, DigestDelivery
from tests.digests.conftest import EXPECTED_RECIPIENTS, WEEK, free_port, html_part, text_part

pytestmark = pytest.mark.django_db


def send(acme, **options):
    return services.send_digests(organisation=acme, week=WEEK, **options)


def ledger() -> dict[str, tuple[str, int]]:
    return {row.email: (row.status, row.attempts) for row in DigestDelivery.objects.filter(week=str(WEEK))}


def test_each_entitled_person_gets_one_digest_however_often_it_runs(
    acme, readers, weeks_of_usage, smtp_server
):
    first = send(acme)
    second = send(acme)

    assert smtp_server.recipients == EXPECTED_RECIPIENTS
    assert (first.recipients, first.sent, first.skipped, first.failed) == (6, 6, 0, 0)
    assert (second.sent, second.skipped) == (0, 6)

    out = io.StringIO()
    call_command("send_digests", "--week", "2026-W32", stdout=out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    # One line per organisation; Globex's CIO gets Globex's (empty) digest, never Acme's.
    assert [(line["organisation"], line["sent"], line["skipped"]) for line in lines] == [
        ("acme", 0, 6),
        ("globex", 1, 0),
    ]
    assert smtp_server.recipients == sorted([*EXPECTED_RECIPIENTS, "cio@globex.example"])
    assert set(ledger().values()) == {(DeliveryStatus.SENT, 1)}
    assert "Acme" not in text_part(smtp_server.to("cio@globex.example")[0])


def test_the_email_is_text_and_html_alternatives_with_one_click_unsubscribe(
    acme, readers, weeks_of_usage, smtp_server
):
    send(acme)
    message = smtp_server.to("platform.lead@acme.example")[0]

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "SpendWatch · your teams: $0.80 in 3–9 Aug 2026 (last week $0.40)"
    assert message["From"] == "SpendWatch <digests@acme.example>"
    user_id = readers["platform_lead"].pk
    assert message["Message-ID"] == f"<digest.2026-W32.{user_id}@spendwatch.acme.example>"
    unsubscribe = message["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://spendwatch.acme.example/digests/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # No browser here: the email says so, and every chart's numbers are in both bodies instead.
    for body in (text_part(message), html_part(message)):
        assert "Charts are not included in this email: no browser is configured" in body
        assert "week of 27 Jul: $0.40; week of 3 Aug: $0.80" in body
    assert "<script" not in html_part(message)
    assert 'href="https://spendwatch.acme.example/teams/platform/"' in html_part(message)


def test_a_run_that_died_before_the_hand_over_is_finished_by_the_next_one(
    acme, readers, weeks_of_usage, smtp_server, settings, monkeypatch
):
    """Crash between claim and send: the claim expires and the next run sends it, once."""
    from apps.digests import emails

    real_render = emails.render_digest
    calls = []

    def dies_on_the_third_digest(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("the worker was killed")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(services, "render_digest", dies_on_the_third_digest)
    with pytest.raises(KeyboardInterrupt):
        send(acme)
    assert len(smtp_server.messages) == 2
    stuck = DigestDelivery.objects.get(status=DeliveryStatus.CLAIMED)
    assert stuck.email == "eng.lead@acme.example"

    monkeypatch.setattr(services, "render_digest", real_render)
    summary = send(acme)  # the claim is still live: this run leaves it alone
    assert (summary.sent, summary.skipped) == (3, 3)
    assert "eng.lead@acme.example" not in smtp_server.recipients

    settings.SPENDWATCH_DIGEST_CLAIM_SECONDS = 0  # the lease has run out
    DigestDelivery.objects.filter(pk=stuck.pk).update(claimed_until=stuck.created_at)
    summary = send(acme)
    assert (summary.sent, summary.skipped) == (1, 5)
    assert smtp_server.recipients == EXPECTED_RECIPIENTS
    assert ledger()["eng.lead@acme.example"] == (DeliveryStatus.SENT, 2)


def test_a_run_that_died_during_the_hand_over_never_sends_again(
    acme, readers, weeks_of_usage, smtp_server, settings, monkeypatch
):
    """Crash after the server took the message but before it was recorded: maybe delivered, so the
    next run marks it uncertain and does not send it a second time."""
    real_send = EmailBackend.send_messages

    def delivers_then_dies(self, messages):
        sent = real_send(self, messages)
        if messages[0].to == ["cio@acme.example"]:
            raise KeyboardInterrupt("the worker was killed")
        return sent

    monkeypatch.setattr(EmailBackend, "send_messages", delivers_then_dies)
    with pytest.raises(KeyboardInterrupt):
        send(acme)
    assert ledger()["cio@acme.example"] == (DeliveryStatus.SENDING, 1)

    monkeypatch.setattr(EmailBackend, "send_messages", real_send)
    settings.SPENDWATCH_DIGEST_CLAIM_SECONDS = 0
    DigestDelivery.objects.filter(email="cio@acme.example").update(claimed_until="2026-01-01T00:00Z")
    summary = send(acme)

    assert smtp_server.recipients == EXPECTED_RECIPIENTS  # the CIO's once, not twice
    assert ledger()["cio@acme.example"] == (DeliveryStatus.UNCERTAIN, 1)
    assert (summary.sent, summary.skipped) == (4, 2)  # eng.lead, finops, platform, sales; alice was sent


def test_a_refused_or_unreachable_send_is_retried_and_never_duplicated(
    acme, readers, weeks_of_usage, smtp_server, settings
):
    smtp_server.refuse = {"finops@acme.example"}
    first = send(acme)
    assert (first.sent, first.failed) == (5, 1)
    failed = DigestDelivery.objects.get(email="finops@acme.example")
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)
    assert failed.error.startswith("SMTPRecipientsRefused")

    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nobody listens there: the connection is refused
    second = send(acme)
    assert (second.sent, second.failed, second.skipped) == (0, 1, 5)
    assert ledger()["finops@acme.example"] == (DeliveryStatus.FAILED, 2)

    settings.EMAIL_PORT = port
    smtp_server.refuse = set()
    third = send(acme)
    assert (third.sent, third.skipped) == (1, 5)
    assert smtp_server.recipients == EXPECTED_RECIPIENTS
    assert ledger()["finops@acme.example"] == (DeliveryStatus.SENT, 3)


def test_a_recipient_refused_too_often_is_given_up(acme, readers, weeks_of_usage, smtp_server, settings):
    settings.SPENDWATCH_DIGEST_MAX_ATTEMPTS = 2
    smtp_server.refuse = {"finops@acme.example"}
    send(acme)
    send(acme)
    smtp_server.refuse = set()
    third = send(acme)
    assert (third.sent, third.failed, third.skipped) == (0, 0, 6)
    assert ledger()["finops@acme.example"] == (DeliveryStatus.FAILED, 2)
    assert "finops@acme.example" not in smtp_server.recipients


def test_a_dry_run_writes_eml_files_and_sends_nothing(acme, readers, weeks_of_usage, smtp_server, tmp_path):
    out = io.StringIO()
    call_command(
        "send_digests",
        "--dry-run",
        "--week",
        "2026-W32",
        "--organisation",
        "acme",
        "--out",
        str(tmp_path),
        stdout=out,
    )

    summary = orjson.loads(out.getvalue())
    assert (summary["dry_run"], summary["sent"], summary["recipients"]) == (True, 0, 6)
    files = sorted((tmp_path / "acme" / "2026-W32").glob("*.eml"))
    assert sorted(path.name.split("-", 1)[1] for path in files) == [
        f"{email}.eml" for email in EXPECTED_RECIPIENTS
    ]
    assert smtp_server.messages == []
    assert not DigestDelivery.objects.exists()
    written = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert written["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "SpendWatch weekly digest: Acme" in text_part(written)


def test_the_command_refuses_a_bad_week(acme):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as refused:
        call_command("send_digests", "--week", "2026-W60")
    assert str(refused.value) == "week '2026-W60' does not exist: 2026 has no ISO week 60"
