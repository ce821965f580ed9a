"""Late data for a week whose digests were already sent (TESTPLAN A11).

Documented behaviour (apps/digests/services.py, the sent ledger): a digest is sent once per recipient and
ISO week and is never re-sent or corrected by email. Late rows change the ledger at once: the facts, the
rollup of their day, the dashboards and the API; the ingestion run lists the days it changed; and the
next week's digest, which compares with "last week", shows the corrected figure. The sent digest's
ledger row stays as it was (status, attempts, sent time, Message-ID).

The cast and the three weeks of usage are tests/digests/conftest.py's (W32 = 3–9 Aug 2026; Platform's
week: alice 2 × $0.40 = $0.80), sent through a real SMTP server on loopback.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Sum

from apps.digests import services
from apps.digests.models import DeliveryStatus, DigestDelivery
from apps.digests.weeks import IsoWeek
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import write_jsonl
from tests.digests import conftest as digests
from tests.digests.conftest import EXPECTED_RECIPIENTS, W32, WEEK, request

# The digest tests' fixtures (the cast, three weeks of usage, the SMTP server), offered to this module.
digest_settings = digests.digest_settings
leads = digests.leads
readers = digests.readers
weeks_of_usage = digests.weeks_of_usage
smtp_server = digests.smtp_server

pytestmark = pytest.mark.django_db

LATE_DAY = W32.date()  # Wednesday 5 August
NEXT_WEEK = IsoWeek(2026, 33)


def ledger_rows() -> list[tuple]:
    return list(
        DigestDelivery.objects.filter(week=str(WEEK), organisation__slug="acme")
        .order_by("email")
        .values_list("email", "status", "attempts", "sent_at", "message_id")
    )


def spend_by_team(client, start: str, end: str) -> dict:
    response = client.get("/api/v1/spend/", {"group_by": "team", "start": start, "end": end})
    assert response.status_code == 200
    return {group["key"]: group["cost_usd"] for group in response.json()["groups"]}


def test_late_rows_change_the_ledger_and_the_next_digest_never_the_sent_one(
    acme, readers, weeks_of_usage, smtp_server, ingest, client, tmp_path
):
    first = services.send_digests(organisation=acme, week=WEEK)
    assert (first.sent, first.skipped) == (6, 0)
    assert smtp_server.recipients == EXPECTED_RECIPIENTS
    sent_subject = smtp_server.to("platform.lead@acme.example")[0]["Subject"]
    assert sent_subject == "SpendWatch · your teams: $0.80 in 3–9 Aug 2026 (last week $0.40)"
    ledger_before = ledger_rows()
    client.force_login(readers["cio"])
    assert spend_by_team(client, "2026-08-03", "2026-08-09")["platform"] == "0.800000000"
    rollup_before = DailyRollup.objects.filter(day=LATE_DAY).aggregate(cost=Sum("cost_nanos"))["cost"]

    # A gateway export arrives a week late: one more alice request of 1,000,000 tokens on 5 August.
    late_at = W32 + dt.timedelta(hours=3)
    late = ingest(
        "litellm_spend_logs",
        write_jsonl(tmp_path / "late.jsonl", [request("alice@acme.example", late_at, 1_000_000)]),
    )

    assert late.summary()["accepted"] == 1
    assert late.touched_days == [LATE_DAY.isoformat()]  # the run lists the day it changed
    assert UsageFact.objects.filter(ts=late_at).aggregate(cost=Sum("cost_nanos"))["cost"] == 400_000_000
    rollup_after = DailyRollup.objects.filter(day=LATE_DAY).aggregate(cost=Sum("cost_nanos"))["cost"]
    assert rollup_after - rollup_before == 400_000_000
    assert spend_by_team(client, "2026-08-03", "2026-08-09")["platform"] == "1.200000000"

    # The beat's hourly run and a hand-made re-run both leave the sent week alone.
    again = services.send_digests(organisation=acme, week=WEEK)
    assert (again.sent, again.skipped) == (0, 6)
    hourly = services.send_due_digests(now=dt.datetime(2026, 8, 10, 9, 30, tzinfo=dt.UTC))
    assert [(run.organisation, run.sent, run.skipped) for run in hourly if run.organisation == "acme"] == [
        ("acme", 0, 6)
    ]
    assert sorted(address for address in smtp_server.recipients if address.endswith("@acme.example")) == (
        EXPECTED_RECIPIENTS
    )
    assert ledger_rows() == ledger_before
    assert {row[1] for row in ledger_before} == {DeliveryStatus.SENT}

    # The next week's digest compares with the corrected week.
    following = services.send_digests(organisation=acme, week=NEXT_WEEK)
    assert following.sent == 6
    next_subject = smtp_server.to("platform.lead@acme.example")[1]["Subject"]
    assert next_subject == "SpendWatch · your teams: $0.00 in 10–16 Aug 2026 (last week $1.20)"
