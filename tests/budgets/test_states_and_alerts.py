"""Budget states follow the ledger (sub-teams roll up); each alert is raised and sent exactly once,
by email through a real SMTP server and to a webhook on a real HTTP server, both on loopback."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import threading
import time
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.budgets import services
from apps.budgets.models import (
    Alert,
    AlertKind,
    AlertStatus,
    BudgetSettings,
    CheckEntry,
    LimitState,
    ScopeKind,
    Unit,
)
from tests.budgets.conftest import ONE, ONE_TOKENS, limit_on

NOW = dt.datetime(2026, 8, 17, 12, 0, tzinfo=dt.UTC)  # a Monday, noon (Acme keeps UTC)
AUGUST = dt.datetime(2026, 8, 10, 10, 0, tzinfo=dt.UTC)


def state_of(limit, person=None) -> LimitState:
    return LimitState.objects.get(limit=limit, person=person)


@pytest.fixture
def august(usage, people):
    """10 August: alice (Platform) 3 requests, bob (Payments) 2, carol (Sales EMEA) 1."""
    usage(
        ("alice@acme.example", 3, AUGUST),
        ("bob@acme.example", 2, AUGUST),
        ("carol@acme.example", 1, AUGUST),
    )


def test_sub_teams_roll_up_into_their_parent_only_when_asked(acme, teams, people, august, system):
    with_subteams = limit_on(system, team=teams["engineering"], include_subteams=True, amount=100 * ONE)
    alone = limit_on(system, team=teams["engineering"], amount=100 * ONE, period="quarter")
    platform = limit_on(system, team=teams["platform"], amount=100 * ONE)
    tokens = limit_on(
        system, team=teams["engineering"], include_subteams=True, amount=10**6, unit=Unit.TOKENS
    )
    sales = limit_on(system, team=teams["sales"], include_subteams=True, amount=100 * ONE)

    services.state_refresh(organisation_id=acme.pk, now=NOW)

    assert state_of(with_subteams).spent == 5 * ONE
    assert state_of(alone).spent == 0  # nobody works in Engineering itself
    assert state_of(platform).spent == 3 * ONE
    assert state_of(tokens).spent == 5 * ONE_TOKENS
    assert state_of(sales).spent == 1 * ONE
    # The check table knows every team the subtree limit covers, and nothing else.
    subjects = set(CheckEntry.objects.filter(state__limit=with_subteams).values_list("subject", flat=True))
    assert subjects == {f"t:{teams[slug].pk}" for slug in ("engineering", "platform", "payments")}


def test_a_per_person_default_gives_each_person_their_own_state(acme, teams, people, august, system):
    default = limit_on(
        system,
        kind=ScopeKind.PERSON_DEFAULT,
        team=teams["engineering"],
        include_subteams=True,
        amount=10 * ONE,
    )
    own = limit_on(system, person=people["bob"], amount=50 * ONE)  # bob's own limit replaces the default

    services.state_refresh(organisation_id=acme.pk, now=NOW)

    assert {(s.person.name, s.spent) for s in LimitState.objects.filter(limit=default)} == {
        ("Alice", 3 * ONE)
    }
    assert state_of(own).spent == 2 * ONE
    assert state_of(default, people["alice"]).scope == "person:alice@acme.example"


def test_refreshing_only_the_touched_days_equals_a_full_recompute(acme, teams, people, usage, august, system):
    limit = limit_on(system, team=teams["engineering"], include_subteams=True, amount=100 * ONE)
    services.state_refresh(organisation_id=acme.pk, now=NOW)
    later = dt.datetime(2026, 8, 12, 9, 0, tzinfo=dt.UTC)
    usage(("alice@acme.example", 4, later), ("carol@acme.example", 9, later))

    services.state_refresh(organisation_id=acme.pk, days=[later.date()], now=NOW)
    incremental = state_of(limit).spent
    services.state_refresh(organisation_id=acme.pk, now=NOW)

    assert incremental == state_of(limit).spent == 9 * ONE


def test_an_ingestion_refreshes_the_states_through_the_signal(
    acme, teams, people, usage, system, django_capture_on_commit_callbacks
):
    limit = limit_on(system, team=teams["platform"], amount=100 * ONE)
    today = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        usage(("alice@acme.example", 3, today))
    assert state_of(limit).spent == 3 * ONE
    with django_capture_on_commit_callbacks(execute=True):
        usage(("alice@acme.example", 2, today))
    assert state_of(limit).spent == 5 * ONE


def test_each_threshold_alerts_once_per_period(acme, teams, people, usage, system):
    BudgetSettings.objects.create(organisation=acme, alert_emails="finops@acme.example")
    limit_on(system, team=teams["platform"], amount=5 * ONE)
    usage(("alice@acme.example", 3, AUGUST))  # 60 %
    early = AUGUST + dt.timedelta(days=2)  # two days of history: too little for a forecast alert

    services.state_refresh(organisation_id=acme.pk, now=early)
    services.state_refresh(organisation_id=acme.pk, now=early)
    assert list(Alert.objects.values_list("kind", "threshold", "status")) == [
        (AlertKind.THRESHOLD, 50, AlertStatus.PENDING)
    ]
    services.alerts_deliver(organisation_id=acme.pk)
    services.alerts_deliver(organisation_id=acme.pk)
    assert [message.subject for message in mail.outbox] == [
        "Budget alert: The Platform team has used 50% of the monthly budget: $0.00 of $0.00."
    ]

    usage(("alice@acme.example", 2, AUGUST + dt.timedelta(days=1)))  # 100 %: 80 and 100 crossed at once
    services.state_refresh(organisation_id=acme.pk, now=early)
    services.state_refresh(organisation_id=acme.pk, now=early)
    services.alerts_deliver(organisation_id=acme.pk)
    assert sorted(Alert.objects.values_list("threshold", "status")) == [
        (50, AlertStatus.SENT),
        (80, AlertStatus.SUPERSEDED),  # only the highest of several at once is sent
        (100, AlertStatus.SENT),
    ]
    assert len(mail.outbox) == 2
    assert "has reached the monthly budget" in mail.outbox[1].body

    # A new period starts afresh.
    usage(("alice@acme.example", 3, AUGUST + dt.timedelta(days=30)))  # 9 September
    services.state_refresh(organisation_id=acme.pk, now=early + dt.timedelta(days=30))
    september = Alert.objects.filter(period_start=dt.date(2026, 9, 1), kind=AlertKind.THRESHOLD)
    assert list(september.values_list("threshold", flat=True)) == [50]


def test_the_database_refuses_a_second_copy_of_an_alert(acme, teams, people, usage, system):
    limit = limit_on(system, team=teams["platform"], amount=5 * ONE)
    usage(("alice@acme.example", 3, AUGUST))
    services.state_refresh(organisation_id=acme.pk, now=AUGUST + dt.timedelta(days=2))
    alert = Alert.objects.get()
    alert.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        alert.save()
    assert Alert.objects.filter(limit=limit).count() == 1


def test_a_scope_projected_to_exceed_raises_a_forecast_alert(acme, teams, people, usage, system):
    # 3-16 August: 4 requests each weekday, 1 each weekend day; today (Monday 17th, noon) 2 so far.
    for offset in range(14):
        day = dt.datetime(2026, 8, 3, 10, 0, tzinfo=dt.UTC) + dt.timedelta(days=offset)
        usage(("alice@acme.example", 4 if day.weekday() < 5 else 1, day))
    usage(("alice@acme.example", 2, NOW - dt.timedelta(hours=1)))
    limit = limit_on(system, team=teams["platform"], amount=80 * ONE, thresholds=[90])

    services.state_refresh(organisation_id=acme.pk, now=NOW)

    state = state_of(limit)
    assert (state.spent, state.projected) == (46 * ONE, 92 * ONE)  # see test_forecast for the arithmetic
    assert state.exhaustion_date == dt.date(2026, 8, 27)
    alert = Alert.objects.get()
    assert (alert.kind, alert.threshold, alert.exhaustion_date) == (
        AlertKind.FORECAST,
        100,
        dt.date(2026, 8, 27),
    )
    assert alert.message == (
        "At this rate the Platform team's monthly budget runs out on 27 August: "
        "$0.05 projected against $0.04 ($0.02 spent so far)."
    )


# --- delivery through real servers on loopback ---------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    yield inbox
    controller.stop()


class Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200
    delay = 0.0

    def do_POST(self):  # noqa: N802 - http.server's hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).delay)
        type(self).received.append({"content_type": self.headers["Content-Type"], "json": json.loads(body)})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(acme):
    Hook.received, Hook.status, Hook.delay = [], 200, 0.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/budget"
    server.shutdown()
    server.server_close()


@pytest.fixture
def platform_at_60_percent(acme, teams, people, usage, system, webhook):
    BudgetSettings.objects.create(
        organisation=acme, alert_emails="finops@acme.example, cio@acme.example", webhook_url=webhook
    )
    limit = limit_on(
        system, team=teams["platform"], amount=5 * ONE, notify_emails="platform.lead@acme.example"
    )
    usage(("alice@acme.example", 3, AUGUST))
    services.state_refresh(organisation_id=acme.pk, now=AUGUST + dt.timedelta(days=2))  # no forecast yet
    return limit


def test_alerts_go_by_smtp_and_webhook_once(platform_at_60_percent, smtp_server, webhook):
    summary = services.alerts_deliver(organisation_id=platform_at_60_percent.organisation_id)
    again = services.alerts_deliver(organisation_id=platform_at_60_percent.organisation_id)

    assert (summary.sent, again.sent) == (1, 0)
    assert len(smtp_server.messages) == 1
    recipients, content = smtp_server.messages[0]
    assert sorted(recipients) == ["cio@acme.example", "finops@acme.example", "platform.lead@acme.example"]
    parsed = message_from_bytes(content, policy=policy.default)
    assert (
        parsed["Subject"]
        == "Budget alert: The Platform team has used 50% of the monthly budget: $0.00 of $0.00."
    )
    parts = {part.get_content_type(): part.get_content() for part in parsed.walk() if not part.is_multipart()}
    assert "Spent: $0.00" in parts["text/plain"] and "Organisation: Acme" in parts["text/plain"]
    assert "<strong>The Platform team has used 50% of the monthly budget" in parts["text/html"]

    assert len(Hook.received) == 1
    hook = Hook.received[0]
    assert hook["content_type"] == "application/json"
    assert hook["json"]["text"] == (
        "SpendWatch (Acme): The Platform team has used 50% of the monthly budget: $0.00 of $0.00."
    )
    assert hook["json"]["alert"]["spent"] == "0.001500000"
    assert hook["json"]["alert"]["limit_amount"] == "0.002500000"
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.SENT and alert.email_sent_at and alert.webhook_sent_at


def test_a_slow_webhook_times_out_and_is_retried_without_resending_the_email(
    platform_at_60_percent, smtp_server, settings
):
    settings.SPENDWATCH_BUDGET_NOTIFY_TIMEOUT_SECONDS = 1
    Hook.delay = 3.0
    started = time.monotonic()
    summary = services.alerts_deliver(organisation_id=platform_at_60_percent.organisation_id)
    assert time.monotonic() - started < 2.5
    alert = Alert.objects.get()
    assert (summary.retry, alert.status, alert.attempts) == (1, AlertStatus.PENDING, 1)
    assert "timed out" in alert.webhook_error
    assert alert.email_sent_at is not None

    Hook.delay = 0.0
    services.alerts_deliver(organisation_id=platform_at_60_percent.organisation_id)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.SENT
    assert len(smtp_server.messages) == 1  # the email went once, the webhook on the second run


def test_a_webhook_that_keeps_failing_gives_up_after_the_attempts_allowed(
    platform_at_60_percent, smtp_server, settings
):
    settings.SPENDWATCH_BUDGET_ALERT_MAX_ATTEMPTS = 2
    Hook.status = 500
    services.alerts_deliver(organisation_id=platform_at_60_percent.organisation_id)
    summary = services.alerts_deliver(organisation_id=platform_at_60_percent.organisation_id)
    alert = Alert.objects.get()
    assert (summary.failed, alert.status, alert.webhook_error, alert.attempts) == (
        1,
        AlertStatus.FAILED,
        "HTTP 500",
        2,
    )
    assert "127.0.0.1" not in alert.webhook_error  # a webhook URL is a credential: never in the history
