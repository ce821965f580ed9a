"""Digests: the cast of tests/conftest.py (Acme, its teams, alice, bob, carol) with the people who read
digests, three weeks of usage through the real pipeline, budgets, planted prompts and a real SMTP server.

Acme (UTC):  Engineering ─┬─ Platform   alice (reports to pat), pat (Platform's manager)
                          └─ Payments   bob (reports to erin)
             Engineering:  erin (Engineering's manager)
             Sales ──────── EMEA        carol

The reported week is 2026-W32 (Mon 3 – Sun 9 Aug 2026); last week is W31, "a month ago" is W28. Every
request is gpt-4.1-mini with no cache: $0.40 per million input tokens (400 nano-dollars a token) and
$1.60 per million output tokens, so a request of N input tokens costs N × 400 nano-dollars:

                    W32 (3–9 Aug)              W31 (27 Jul – 2 Aug)     W28 (6–12 Jul)
  alice (Platform)  2 × 1,000,000 = $0.80      1 × 1,000,000 = $0.40    1 × 1,000,000 = $0.40
  bob (Payments)    1 × 2,500,000 = $1.00      3 × 1,000,000 = $1.20    –
  carol (EMEA)      1 × 123,457 = $0.0493828   –                        –
  ghost (no team)   1 × 500,000 = $0.20        –                        –
  total             $2.0493828                 $1.60                    $0.40
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import socket
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model

from apps.accounts.models import Membership, Role
from apps.digests.models import DigestPreference
from apps.digests.weeks import IsoWeek
from apps.org.models import Organisation, Person
from tests.conftest import litellm_record, write_jsonl

WEEK = IsoWeek(2026, 32)
W32 = dt.datetime(2026, 8, 5, 10, tzinfo=dt.UTC)  # the Wednesday of each week
W31 = dt.datetime(2026, 7, 29, 10, tzinfo=dt.UTC)
W28 = dt.datetime(2026, 7, 8, 10, tzinfo=dt.UTC)
SEND_TIME = dt.datetime(2026, 8, 10, 8, 30, tzinfo=dt.UTC)  # Monday after W32, 08:30 UTC
GHOST = "ghost@contractor.example"  # no person of Acme: unattributed
NANOS_PER_INPUT_TOKEN = 400

_ids = itertools.count()


def request(user: str, when: dt.datetime, input_tokens: int, request_id: str | None = None) -> dict:
    """A gpt-4.1-mini gateway log of `input_tokens` (none cached) and no output: input_tokens × 400 nanos."""
    record = litellm_record(request_id or f"d{next(_ids)}", user=user, startTime=when.isoformat())
    record["prompt_tokens"], record["completion_tokens"] = input_tokens, 0
    usage = record["metadata"]["usage_object"]
    usage["prompt_tokens"], usage["completion_tokens"] = input_tokens, 0
    usage["prompt_tokens_details"] = {"cached_tokens": 0}
    return record


@pytest.fixture(autouse=True)
def digest_settings(settings, tmp_path):
    """No browser unless a test asks for one (starting Chromium costs seconds); every group visible
    unless a test is about group sizes; links to a fixed address."""
    settings.SPENDWATCH_CHROMIUM_PATH = ""
    settings.SPENDWATCH_DIGEST_MIN_GROUP_SIZE = 1
    settings.SPENDWATCH_BASE_URL = "https://spendwatch.acme.example"
    settings.SPENDWATCH_DIGEST_DRY_RUN_DIR = tmp_path / "dry-run"
    settings.DEFAULT_FROM_EMAIL = "SpendWatch <digests@acme.example>"
    return settings


@pytest.fixture
def leads(acme, teams, people) -> dict[str, Person]:
    pat = Person.objects.create(
        organisation=acme, name="Pat", email="pat@acme.example", team=teams["platform"]
    )
    erin = Person.objects.create(
        organisation=acme, name="Erin", email="erin@acme.example", team=teams["engineering"]
    )
    Person.objects.filter(pk=people["alice"].pk).update(manager=pat)
    Person.objects.filter(pk=people["bob"].pk).update(manager=erin)
    return {"pat": pat, "erin": erin}


def make_user(organisation, email: str, role: str, *, person=None, manages=(), active=True):
    user = get_user_model().objects.create_user(
        username=email,
        email=email,
        password=None,
        is_active=active,  # no hashing: logins use force_login
    )
    membership = Membership.objects.create(user=user, organisation=organisation, role=role, person=person)
    membership.managed_teams.set(manages)
    return user


@pytest.fixture
def readers(acme, teams, people, leads) -> dict:
    """Everyone with a login. Expected recipients: alice (opted in), cio, eng.lead, finops, platform.lead,
    sales.lead. Not: bob (a member who did not opt in), idle.lead (manages no team), gone (inactive)."""
    users = {
        "cio": make_user(acme, "cio@acme.example", Role.CIO),
        "finops": make_user(acme, "finops@acme.example", Role.FINOPS),
        "eng_lead": make_user(
            acme, "eng.lead@acme.example", Role.MANAGER, person=leads["erin"], manages=[teams["engineering"]]
        ),
        "platform_lead": make_user(
            acme, "platform.lead@acme.example", Role.MANAGER, person=leads["pat"], manages=[teams["platform"]]
        ),
        "sales_lead": make_user(acme, "sales.lead@acme.example", Role.MANAGER, manages=[teams["sales"]]),
        "idle_lead": make_user(acme, "idle.lead@acme.example", Role.MANAGER),
        "alice": make_user(acme, "alice@acme.example", Role.MEMBER, person=people["alice"]),
        "bob": make_user(acme, "bob@acme.example", Role.MEMBER, person=people["bob"]),
        "gone": make_user(acme, "gone@acme.example", Role.CIO, active=False),
    }
    DigestPreference.objects.create(user=users["alice"], subscribed=True)
    globex = Organisation.objects.create(name="Globex", slug="globex")
    users["globex_cio"] = make_user(globex, "cio@globex.example", Role.CIO)
    return users


EXPECTED_RECIPIENTS = [
    "alice@acme.example",
    "cio@acme.example",
    "eng.lead@acme.example",
    "finops@acme.example",
    "platform.lead@acme.example",
    "sales.lead@acme.example",
]


@pytest.fixture
def weeks_of_usage(ingest, people, tmp_path):
    """The usage in the module docstring, through the real pipeline."""
    records = [
        request("alice@acme.example", W32, 1_000_000),
        request("alice@acme.example", W32 + dt.timedelta(days=1), 1_000_000),
        request("bob@acme.example", W32, 2_500_000),
        request("carol@acme.example", W32, 123_457),
        request(GHOST, W32, 500_000),
        request("alice@acme.example", W31, 1_000_000),
        *(request("bob@acme.example", W31, 1_000_000) for _ in range(3)),
        request("alice@acme.example", W28, 1_000_000),
    ]
    return ingest("litellm_spend_logs", write_jsonl(tmp_path / f"usage{next(_ids)}.jsonl", records))


# --- a real SMTP server on loopback ----------------------------------------------------------------------


class Inbox:
    """Collects what the server accepted; `refuse` makes it answer 550 to those recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def parsed(self) -> list[EmailMessage]:
        return [message_from_bytes(content, policy=policy.default) for _, content in self.messages]

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.parsed() if message["To"] == address]

    @property
    def recipients(self) -> list[str]:
        return sorted(address for tos, _ in self.messages for address in tos)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings) -> Inbox:
    server_log = logging.getLogger("mail.log")  # aiosmtpd narrates every command at INFO
    level = server_log.level
    server_log.setLevel(logging.WARNING)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield inbox
    controller.stop()
    server_log.setLevel(level)


def text_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def html_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")


Sender = Callable[..., object]


# --- budgets and prompts ---------------------------------------------------------------------------------


@pytest.fixture
def budgets(acme, teams, weeks_of_usage):
    """August budgets, their states refreshed as of the send time (10 Aug):
    Platform $10.00 (8 % spent), Payments $1.00 (100 %: over), each person in Platform $0.50 (alice
    over at $0.80, pat at $0.00), each person in Payments $0.50 (bob over at $1.00)."""
    from apps.accounts.scoping import organisation_viewer
    from apps.budgets import services as budget_services
    from apps.budgets.models import ScopeKind

    actor = budget_services.Actor(viewer=organisation_viewer(acme), label="tests")
    dollars = 1_000_000_000

    def limit(team: str, amount: int, kind: str = ScopeKind.TEAM):
        return budget_services.limit_create(
            actor=actor,
            spec=budget_services.LimitSpec(
                scope_kind=kind, unit="usd", amount=amount, period="month", team=teams[team]
            ),
        )

    created = {
        "platform": limit("platform", 10 * dollars),
        "payments": limit("payments", 1 * dollars),
        "platform_people": limit("platform", dollars // 2, ScopeKind.PERSON_DEFAULT),
        "payments_people": limit("payments", dollars // 2, ScopeKind.PERSON_DEFAULT),
    }
    budget_services.state_refresh(organisation_id=acme.pk, now=SEND_TIME)
    return created


# Planted in prompts Acme's gateway logged: a digest must never carry any of it (TESTPLAN I4).
CANARY = "canary-7731 merger codename BLUEHERON"
PLANTED = {
    "p1": ("alice@acme.example", "hello, how are you today?"),
    "p2": ("alice@acme.example", "good morning!"),
    "p3": ("bob@acme.example", "thanks, that's all"),
    "p4": ("bob@acme.example", f"what's the weather in Lisbon tomorrow? {CANARY}"),
    "p5": ("alice@acme.example", f"summarise the board memo on {CANARY}"),
}


@pytest.fixture
def prompts(acme, ingest, people, tmp_path):
    """Frontier (gpt-5) requests in W32 with their prompts observed (stored as redacted excerpts)."""
    from apps.overuse.services import PromptItem, observe_prompts

    records = []
    for request_id, (user, _) in PLANTED.items():
        # 200,000 input tokens: $0.25 on gpt-5 ($1.25 per million), $0.01 on gpt-5-nano.
        record = request(user, W32, 200_000, request_id=request_id)
        record["model"] = "gpt-5-2025-08-07"
        records.append(record)
    run = ingest("litellm_spend_logs", write_jsonl(tmp_path / "prompts.jsonl", records), source="gateway")
    observe_prompts(
        organisation_id=acme.pk,
        source_id=run.source_id,
        items=[PromptItem(W32, request_id, prompt) for request_id, (_, prompt) in PLANTED.items()],
    )
    return run
