"""The demo organisation "Northwind Trading": its org chart, and 90 days of usage as real source files.

The usage is written in the sources' own formats (LiteLLM spend-log JSONL, OpenAI Admin Usage pages) and
loaded through the same pipeline as a user's upload, so the demo exercises attribution, pricing, dedupe
and rollups exactly as production data would.

Determinism: the org chart depends only on the seed, and each day's usage only on (seed, date, scale),
never on "today". Loading on a later day therefore re-writes the overlapping days byte for byte (they come
back as duplicates) and adds only the new days, instead of doubling the history.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import math
import random
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import membership_create
from apps.catalog.normalise import model_name, provider_slug
from apps.catalog.pricing import Pricer, TokenCounts
from apps.ingestion.models import IngestionRun
from apps.ingestion.services import ingest_files, source_get_or_create
from apps.org.models import Identity, IdentityKind, Organisation, Person, Task, Team
from apps.overuse.demo import demo_prompt
from apps.usage.models import NANOS_PER_USD, UsageFact

DEMO_SEED = 20261120
DEMO_DAYS = 90
DEMO_PASSWORD = "demo-password-1"
ORG_SLUG = "northwind"
ORG_NAME = "Northwind Trading"
ORG_TIME_ZONE = "Europe/London"
EMAIL_DOMAIN = "northwind.example"
LITELLM_FILE = "litellm_spend_logs.jsonl"
OPENAI_PAGE_FILE = "openai_usage_page{}.json"
LITELLM_SOURCE = ("LiteLLM gateway", "litellm_spend_logs")
OPENAI_SOURCE = ("OpenAI admin API", "openai_usage")

# Growth is anchored to a fixed date, not to "today", so a day's volume never changes between loads.
GROWTH_ANCHOR = dt.date(2026, 11, 20)
GROWTH_PER_DAY = 0.0025  # about +25% over the 90-day window
WEEKEND_FACTOR = 0.25
# The OpenAI Usage API allows at most 31 daily buckets per page.
BUCKETS_PER_PAGE = 31

_LONDON = ZoneInfo(ORG_TIME_ZONE)
_ORG_ID = "org-northwind-01"


# --- the catalogue of models the demo uses ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoModel:
    provider: str  # as LiteLLM's custom_llm_provider names it
    name: str  # as the provider returns it
    group: str  # the gateway alias clients ask for
    api_base: str
    max_prompt: int
    reasoning: bool = False  # reports reasoning tokens inside completion_tokens
    anthropic_cache: bool = False  # usage carries cache_read/cache_creation fields


_OPENAI_BASE = "https://api.openai.com/v1"
_ANTHROPIC_BASE = "https://api.anthropic.com"
_VERTEX_BASE = "https://europe-west2-aiplatform.googleapis.com/v1"
_BEDROCK_BASE = "https://bedrock-runtime.eu-west-2.amazonaws.com"

GPT41 = DemoModel("openai", "gpt-4.1-2025-04-14", "gpt-4.1", _OPENAI_BASE, 400_000)
GPT41_MINI = DemoModel("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", _OPENAI_BASE, 400_000)
GPT5 = DemoModel("openai", "gpt-5-2025-08-07", "gpt-5", _OPENAI_BASE, 272_000, reasoning=True)
GPT5_MINI = DemoModel("openai", "gpt-5-mini-2025-08-07", "gpt-5-mini", _OPENAI_BASE, 272_000, reasoning=True)
GPT5_NANO = DemoModel("openai", "gpt-5-nano-2025-08-07", "gpt-5-nano", _OPENAI_BASE, 272_000, reasoning=True)
OPUS41 = DemoModel(
    "anthropic", "claude-opus-4-1-20250805", "claude-opus", _ANTHROPIC_BASE, 195_000, anthropic_cache=True
)
SONNET45 = DemoModel(
    "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet", _ANTHROPIC_BASE, 400_000, anthropic_cache=True
)
HAIKU45 = DemoModel(
    "anthropic", "claude-haiku-4-5-20251001", "claude-haiku", _ANTHROPIC_BASE, 195_000, anthropic_cache=True
)
GEMINI_PRO = DemoModel("vertex_ai", "gemini-2.5-pro", "gemini-pro", _VERTEX_BASE, 400_000, reasoning=True)
GEMINI_FLASH = DemoModel("vertex_ai", "gemini-2.5-flash", "gemini-flash", _VERTEX_BASE, 400_000)
BEDROCK_SONNET4 = DemoModel(
    "bedrock",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "bedrock-claude-sonnet",
    _BEDROCK_BASE,
    195_000,
    anthropic_cache=True,
)
# A self-hosted model no price list knows: its rows must show up as "unpriced", never as free.
ACME = DemoModel("hosted_vllm", "acme-llm-2027", "acme-llm", "http://acme-llm.internal:8000/v1", 120_000)
UNPRICED_MODEL = ACME.name


# --- the org chart -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """How one kind of team uses the gateway: what for, on which models, with how much context."""

    app: str  # the client application (its key alias and `app:` tag)
    rate: float  # median requests per weekday of an active person
    tasks: dict[str, float]
    models: dict[DemoModel, float]
    prompt_median: int
    output_median: int
    cached: tuple[float, float]  # share of the prompt served from the provider's cache


PROFILES: dict[str, Profile] = {
    "engineering": Profile(
        "ide-assistant",
        6.0,
        {
            "code-generation": 4,
            "code-review": 3,
            "refactoring": 2,
            "chat-assistant": 2,
            "meeting-summaries": 0.5,
        },
        {SONNET45: 36, BEDROCK_SONNET4: 18, GPT41: 12, GPT5: 12, OPUS41: 12, GPT41_MINI: 6, HAIKU45: 4},
        40_000,
        900,
        (0.3, 0.8),
    ),
    "data": Profile(
        "ds-notebooks",
        5.0,
        {"data-analysis": 5, "report-writing": 2, "code-generation": 1, "chat-assistant": 1},
        {GEMINI_PRO: 30, GEMINI_FLASH: 28, SONNET45: 20, GPT5: 15, GPT5_MINI: 7},
        30_000,
        1_200,
        (0.1, 0.5),
    ),
    "support": Profile(
        "support-copilot",
        5.0,
        {"support-triage": 6, "email-drafting": 4, "chat-assistant": 1},
        {HAIKU45: 45, GPT41_MINI: 25, GEMINI_FLASH: 15, SONNET45: 10, GPT5_NANO: 5},
        3_500,
        380,
        (0.2, 0.6),
    ),
    # Payments' IDE assistant was set up with Opus as its default model: a configuration worth a look.
    "engineering-opus": Profile(
        "ide-assistant",
        6.0,
        {
            "code-generation": 4,
            "code-review": 3,
            "refactoring": 2,
            "chat-assistant": 2,
            "meeting-summaries": 0.5,
        },
        {OPUS41: 45, SONNET45: 25, GPT41: 10, GPT5: 10, GPT41_MINI: 6, HAIKU45: 4},
        40_000,
        900,
        (0.3, 0.8),
    ),
    "sales": Profile(
        "sales-assistant",
        3.5,
        {"sales-research": 4, "email-drafting": 4, "chat-assistant": 2, "meeting-summaries": 1},
        {GPT5: 35, OPUS41: 30, SONNET45: 20, GPT41_MINI: 15},
        6_000,
        850,
        (0.0, 0.4),
    ),
    "marketing": Profile(
        "content-studio",
        3.5,
        {"content-writing": 4, "email-drafting": 2, "chat-assistant": 2, "translation": 1},
        {GPT5: 30, OPUS41: 25, GEMINI_FLASH: 25, SONNET45: 20},
        4_000,
        1_000,
        (0.0, 0.4),
    ),
    "finance": Profile(
        "finance-copilot",
        3.0,
        {"report-writing": 4, "data-analysis": 3, "chat-assistant": 1},
        {GPT41: 35, GEMINI_PRO: 25, SONNET45: 25, GPT41_MINI: 15},
        15_000,
        1_400,
        (0.2, 0.6),
    ),
    "people": Profile(
        "hr-helpdesk",
        2.5,
        {"email-drafting": 4, "chat-assistant": 3, "meeting-summaries": 2},
        {HAIKU45: 35, GPT41_MINI: 30, GPT5_NANO: 20, SONNET45: 15},
        2_500,
        600,
        (0.1, 0.5),
    ),
    "legal": Profile(
        "contract-desk",
        3.0,
        {"contract-review": 6, "email-drafting": 2, "chat-assistant": 1},
        {OPUS41: 50, SONNET45: 35, GEMINI_PRO: 15},
        40_000,
        1_500,
        (0.2, 0.7),
    ),
    "operations": Profile(
        "ops-chat",
        3.0,
        {"chat-assistant": 3, "report-writing": 2, "email-drafting": 2, "meeting-summaries": 2},
        {SONNET45: 30, GPT41_MINI: 30, HAIKU45: 25, ACME: 5},
        5_000,
        600,
        (0.1, 0.5),
    ),
}

# A heavy user's traffic: frontier models, whole repositories or document sets as context, little caching.
TOKEN_MAXER_PROFILE = Profile(
    "agent-cli",
    0.0,
    {"refactoring": 3, "code-generation": 3, "code-review": 2, "data-analysis": 1, "contract-review": 1},
    {OPUS41: 55, SONNET45: 30, GEMINI_PRO: 15},
    140_000,
    2_500,
    (0.0, 0.4),
)
TOKEN_MAXERS = 15
TYPICAL_RATE = 4.5  # requests per weekday of a typical adopter, what "5-10x normal" is measured against

TASKS: tuple[tuple[str, str], ...] = (
    ("support-triage", "Support triage"),
    ("code-review", "Code review"),
    ("code-generation", "Code generation"),
    ("refactoring", "Refactoring"),
    ("sales-research", "Sales research"),
    ("chat-assistant", "Chat assistant"),
    ("email-drafting", "Email drafting"),
    ("report-writing", "Report writing"),
    ("data-analysis", "Data analysis"),
    ("contract-review", "Contract review"),
    ("meeting-summaries", "Meeting summaries"),
    ("translation", "Translation"),
    ("content-writing", "Marketing content"),
    ("product-search", "Product search (in-app)"),
    ("smalltalk", "Small talk (non-work)"),
)
# Tier 2 still sends the tag its old integration used; an identity row maps it to the task.
LEGACY_TAGS = {"ticket-triage": "support-triage"}


@dataclass(frozen=True, slots=True)
class TeamSpec:
    slug: str
    name: str
    parent: str | None
    profile: str
    headcount: int
    chatty: bool = False  # a share of its people chat with frontier models about the weather
    working_hours: tuple[float, float] = (13.0, 2.6)  # London-time mean and spread of request times

    @property
    def gateway_team_id(self) -> str:
        return _gateway_team_id(self.slug)


@functools.cache
def _gateway_team_id(slug: str) -> str:
    return "team-" + hashlib.blake2b(f"northwind:{slug}".encode(), digest_size=3).hexdigest()


@functools.cache
def _key_hash(alias: str) -> str:
    # LiteLLM logs the SHA-256 of the virtual key, never the key.
    return hashlib.sha256(f"northwind-virtual-key:{alias}".encode()).hexdigest()


TEAMS: tuple[TeamSpec, ...] = (
    TeamSpec("engineering", "Engineering", None, "engineering", 3),
    TeamSpec("platform", "Platform", "engineering", "engineering", 40),
    TeamSpec("payments", "Payments", "engineering", "engineering-opus", 30),
    TeamSpec("mobile", "Mobile", "engineering", "engineering", 25),
    TeamSpec("data-science", "Data Science", "engineering", "data", 20),
    TeamSpec("customer-support", "Customer Support", None, "support", 2),
    TeamSpec("support-tier-1", "Support Tier 1", "customer-support", "support", 50),
    TeamSpec("support-tier-2", "Support Tier 2", "customer-support", "support", 25),
    TeamSpec("sales", "Sales", None, "sales", 2),
    TeamSpec("sales-emea", "Sales EMEA", "sales", "sales", 30, chatty=True),
    TeamSpec("sales-americas", "Sales Americas", "sales", "sales", 25, working_hours=(18.5, 2.6)),
    TeamSpec("marketing", "Marketing", None, "marketing", 20, chatty=True),
    TeamSpec("finance", "Finance", None, "finance", 15),
    TeamSpec("people", "People", None, "people", 10),
    TeamSpec("legal", "Legal", None, "legal", 8),
    TeamSpec("operations", "Operations", None, "operations", 15),
)

TEAMS_BY_SLUG = {team.slug: team for team in TEAMS}

# The people the demo logins and the sample files name; everyone else is generated.
NAMED_PEOPLE: tuple[tuple[str, str], ...] = (
    ("Priya Natarajan", "engineering"),
    ("Dana Kowalski", "platform"),
    ("Chen Wei", "data-science"),
    ("Tom Okafor", "support-tier-1"),
)
ENGINEERING_MANAGER = "priya.natarajan@northwind.example"
TIER1_MANAGER = "tom.okafor@northwind.example"
DEMO_MEMBER = "dana.kowalski@northwind.example"

FIRST_NAMES = (
    "Aisha", "Alex", "Amelia", "Amir", "Ana", "Andrew", "Anna", "Ben", "Bilal", "Caroline", "Charlotte",
    "Chloe", "Chris", "Daniel", "David", "Deepa", "Eleanor", "Elena", "Emily", "Emma", "Ethan", "Fatima",
    "Finn", "Freya", "George", "Grace", "Hannah", "Harry", "Hassan", "Imogen", "Isaac", "Isla", "Jack",
    "James", "Jamal", "Jasmine", "Jessica", "Joe", "Jonas", "Kate", "Kavya", "Kenji", "Laura", "Leo",
    "Liam", "Lucy", "Luis", "Maria", "Mark", "Matteo", "Maya", "Mei", "Mohammed", "Naomi", "Nathan",
    "Niamh", "Noah", "Olivia", "Omar", "Oscar", "Paul", "Rachel", "Rahul", "Rebecca", "Rhys", "Rosa",
    "Ruth", "Sam", "Sara", "Sean", "Sofia", "Sophie", "Tariq", "Thomas", "Yusuf", "Zara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Ahmed", "Ali", "Anderson", "Baker", "Bennett", "Brown", "Campbell", "Carter", "Chen",
    "Clarke", "Collins", "Cooper", "Davies", "Dhillon", "Edwards", "Evans", "Fernandes", "Fischer",
    "Fletcher", "Garcia", "Gill", "Green", "Hall", "Harris", "Hughes", "Iqbal", "Jackson", "James",
    "Johnson", "Jones", "Kaur", "Kelly", "Khan", "King", "Lewis", "Lopez", "Mahmood", "Martin", "Mensah",
    "Mitchell", "Moore", "Morgan", "Murphy", "Nguyen", "Novak", "O'Brien", "Okonkwo", "Owen", "Parker",
    "Patel", "Phillips", "Price", "Roberts", "Robinson", "Rossi", "Shah", "Singh", "Smith", "Taylor",
    "Thomas", "Thompson", "Turner", "Walker", "Ward", "Watson", "White", "Williams", "Wilson", "Wood",
    "Wright", "Yamamoto", "Young",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PersonSpec:
    name: str
    email: str
    team: str
    rate: float  # requests per weekday at scale 1 and growth 1; 0 = has not adopted the gateway
    token_maxer: bool = False
    chatty: bool = False


# --- OpenAI direct traffic (the Admin Usage API) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAIGroup:
    """One (project, API key, model) group of a daily bucket, with its weekday volume at scale 1."""

    project_id: str
    api_key_id: str
    model: str
    requests: int
    input_per_request: int
    output_per_request: int
    cached: float


@dataclass(frozen=True, slots=True)
class OpenAIProject:
    project_id: str
    team: str | None  # None: no project identity (attributed by its keys, or not at all)
    keys: dict[str, tuple[str | None, str | None]]  # api_key_id -> (team slug, task key) or unmapped


OPENAI_PROJECTS: tuple[OpenAIProject, ...] = (
    OpenAIProject(
        "proj_SupT7kQ2mRw",
        "support-tier-1",
        {
            "key_SUPTRIAGE01": ("support-tier-1", "support-triage"),
            "key_SUPDRAFT02": ("support-tier-1", "email-drafting"),
        },
    ),
    OpenAIProject("proj_Dsp4Lw9ZqBn", "data-science", {"key_DSBATCH03": ("data-science", "data-analysis")}),
    OpenAIProject("proj_Srch2Vn8Kpx", "platform", {"key_SEARCH04": ("platform", "product-search")}),
    OpenAIProject("proj_Fin6Rt3Yhcw", "finance", {"key_FINREP05": ("finance", "report-writing")}),
    OpenAIProject("proj_Mkt8Gd1Xsae", "marketing", {"key_MKTCONTENT06": ("marketing", "content-writing")}),
    # A shared project: no owner, but each team calls it with its own key.
    OpenAIProject(
        "proj_Shr0Qm5Tzkd",
        None,
        {"key_MOBILE07": ("mobile", "translation"), "key_PAYMENTS08": ("payments", None)},
    ),
    # Nobody claims the sandbox: its spend stays unattributed on purpose.
    OpenAIProject("proj_Sbx3Hj7Lcqe", None, {"key_SANDBOX09": (None, None)}),
)

OPENAI_GROUPS: tuple[OpenAIGroup, ...] = (
    OpenAIGroup("proj_SupT7kQ2mRw", "key_SUPTRIAGE01", "gpt-4.1-2025-04-14", 40_000, 3_500, 250, 0.5),
    OpenAIGroup("proj_SupT7kQ2mRw", "key_SUPDRAFT02", "gpt-4.1-mini-2025-04-14", 15_000, 2_000, 400, 0.3),
    OpenAIGroup("proj_Dsp4Lw9ZqBn", "key_DSBATCH03", "gpt-4.1-2025-04-14", 11_000, 15_000, 1_500, 0.35),
    OpenAIGroup("proj_Dsp4Lw9ZqBn", "key_DSBATCH03", "gpt-5-2025-08-07", 4_000, 20_000, 4_000, 0.2),
    OpenAIGroup("proj_Srch2Vn8Kpx", "key_SEARCH04", "gpt-5-mini-2025-08-07", 220_000, 2_500, 500, 0.6),
    OpenAIGroup("proj_Srch2Vn8Kpx", "key_SEARCH04", "gpt-5-nano-2025-08-07", 300_000, 1_200, 200, 0.5),
    OpenAIGroup("proj_Fin6Rt3Yhcw", "key_FINREP05", "gpt-4.1-2025-04-14", 2_500, 30_000, 3_000, 0.3),
    OpenAIGroup("proj_Mkt8Gd1Xsae", "key_MKTCONTENT06", "gpt-5-2025-08-07", 7_000, 5_000, 2_500, 0.2),
    OpenAIGroup("proj_Shr0Qm5Tzkd", "key_MOBILE07", "gpt-4.1-mini-2025-04-14", 8_000, 3_000, 2_500, 0.4),
    OpenAIGroup("proj_Shr0Qm5Tzkd", "key_PAYMENTS08", "gpt-4.1-2025-04-14", 5_000, 6_000, 500, 0.3),
    OpenAIGroup("proj_Sbx3Hj7Lcqe", "key_SANDBOX09", "gpt-5-2025-08-07", 1_200, 8_000, 2_000, 0.1),
    OpenAIGroup("proj_Sbx3Hj7Lcqe", "key_SANDBOX09", "gpt-4.1-2025-04-14", 600, 8_000, 600, 0.1),
)


# A gateway team no identity names, run by service accounts: the gateway side of "unattributed".
UNKNOWN_GATEWAY_TEAM = ("team-0d1e5a", "legacy-automation")
SERVICE_ACCOUNTS = ("svc-ticket-summariser", "svc-nightly-digest")
SERVICE_REQUESTS_PER_DAY = 80  # runs every day, weekends too


@dataclass(frozen=True, slots=True)
class DemoPlan:
    seed: int
    teams: tuple[TeamSpec, ...]
    people: tuple[PersonSpec, ...]


def demo_plan(seed: int = DEMO_SEED) -> DemoPlan:
    """Who works where and how they use AI; a pure function of the seed (no database)."""
    rng = random.Random(f"{seed}:org")
    used = {name for name, _ in NAMED_PEOPLE}
    named = {
        team: [name for name, where in NAMED_PEOPLE if where == team] for team in {t for _, t in NAMED_PEOPLE}
    }
    people: list[PersonSpec] = []
    for team in TEAMS:
        profile = PROFILES[team.profile]
        names = list(named.get(team.slug, []))
        while len(names) < team.headcount:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            if name not in used:
                used.add(name)
                names.append(name)
        for name in names:
            # About one in eight has not adopted the gateway yet; the named people all have.
            adopted = name in dict(NAMED_PEOPLE) or rng.random() >= 0.12
            rate = rng.lognormvariate(math.log(profile.rate), 0.6) if adopted else 0.0
            chatty = team.chatty and adopted and rng.random() < 0.5
            people.append(PersonSpec(name, _email(name), team.slug, rate, chatty=chatty))
    # Heavy users come mostly from engineering, where an agent with a whole-repo context is one command away.
    candidates = [
        index
        for index, person in enumerate(people)
        if person.rate > 0
        and PROFILES[TEAMS_BY_SLUG[person.team].profile].app
        in {"ide-assistant", "ds-notebooks", "contract-desk"}
        and person.email not in {ENGINEERING_MANAGER, DEMO_MEMBER}
    ]
    for index in rng.sample(candidates, TOKEN_MAXERS):
        person = people[index]
        people[index] = PersonSpec(
            person.name, person.email, person.team, rng.uniform(5.0, 10.0) * TYPICAL_RATE, token_maxer=True
        )
    return DemoPlan(seed=seed, teams=TEAMS, people=tuple(people))


def _email(name: str) -> str:
    first, last = name.lower().split(" ", 1)
    last = last.replace("'", "").replace(" ", "")
    return f"{first}.{last}@{EMAIL_DOMAIN}"


# --- the organisation in the database ------------------------------------------------------------------


def build_demo_org(plan: DemoPlan) -> Organisation:
    """Create (or bring up to date) the organisation, its teams, people, tasks and identities."""
    organisation, _ = Organisation.objects.update_or_create(
        slug=ORG_SLUG, defaults={"name": ORG_NAME, "time_zone": ORG_TIME_ZONE}
    )
    teams: dict[str, Team] = {}
    for spec in plan.teams:  # parents come before their children
        teams[spec.slug], _ = Team.objects.update_or_create(
            organisation=organisation,
            slug=spec.slug,
            defaults={"name": spec.name, "parent": teams[spec.parent] if spec.parent else None},
        )
    Person.objects.bulk_create(
        [
            Person(organisation=organisation, email=person.email, name=person.name, team=teams[person.team])
            for person in plan.people
        ],
        ignore_conflicts=True,
    )
    Task.objects.bulk_create(
        [Task(organisation=organisation, key=key, name=name) for key, name in TASKS], ignore_conflicts=True
    )
    tasks = {task.key: task for task in Task.objects.filter(organisation=organisation)}

    identities: list[tuple[str, str, Team | None, Task | None]] = []
    for spec in plan.teams:
        identities.append((IdentityKind.GATEWAY_TEAM, spec.gateway_team_id, teams[spec.slug], None))
    for key, _ in TASKS:
        identities.append((IdentityKind.TAG, key, None, tasks[key]))
    for tag, key in LEGACY_TAGS.items():
        identities.append((IdentityKind.TAG, tag, None, tasks[key]))
    for project in OPENAI_PROJECTS:
        if project.team:
            identities.append((IdentityKind.PROJECT, project.project_id, teams[project.team], None))
        for key_id, (team, task) in project.keys.items():
            if team or task:
                identities.append(
                    (
                        IdentityKind.API_KEY,
                        key_id,
                        teams[team] if team else None,
                        tasks[task] if task else None,
                    )
                )
    for kind, value, team, task in identities:
        Identity.objects.update_or_create(
            organisation=organisation,
            kind=kind,
            value=value,
            defaults={"team": team, "task": task, "person": None},
        )
    return organisation


# --- the usage files ----------------------------------------------------------------------------------


def demo_days(today: dt.date, days: int = DEMO_DAYS) -> list[dt.date]:
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def day_volume(day: dt.date) -> float:
    """How busy a day is relative to a weekday at the growth anchor."""
    weekday = 1.0 if day.weekday() < 5 else WEEKEND_FACTOR
    return weekday * math.exp(GROWTH_PER_DAY * (day - GROWTH_ANCHOR).days)


@dataclass(slots=True)
class DemoFiles:
    litellm: Path
    openai_pages: list[Path]
    litellm_lines: int = 0
    litellm_spend: float = 0.0  # what LiteLLM reported, for the summary
    openai_requests: int = 0

    @property
    def paths(self) -> list[Path]:
        return [self.litellm, *self.openai_pages]


def write_demo_files(plan: DemoPlan, today: dt.date, directory: Path, *, scale: float = 1.0) -> DemoFiles:
    """Write the LiteLLM spend-log JSONL and the OpenAI usage pages for the DEMO_DAYS ending `today`."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(OPENAI_PAGE_FILE.format("*")):
        stale.unlink()
    days = demo_days(today)
    pricer = Pricer()
    files = DemoFiles(litellm=directory / LITELLM_FILE, openai_pages=[])
    partial = files.litellm.with_suffix(".partial")
    with partial.open("wb") as handle:
        for day in days:
            for record in _gateway_day(plan, day, scale, pricer):
                handle.write(orjson.dumps(record))
                handle.write(b"\n")
                files.litellm_lines += 1
                files.litellm_spend += record["spend"]
    # Written aside and moved into place, so an interrupted run never leaves a truncated file to ingest.
    shutil.move(partial, files.litellm)

    buckets = [_openai_bucket(plan.seed, day, scale) for day in days]
    pages = [buckets[start : start + BUCKETS_PER_PAGE] for start in range(0, len(buckets), BUCKETS_PER_PAGE)]
    for number, page in enumerate(pages, start=1):
        has_more = number < len(pages)
        document = {
            "object": "page",
            "data": page,
            "has_more": has_more,
            "next_page": f"page_demo_{number + 1}" if has_more else None,
        }
        path = directory / OPENAI_PAGE_FILE.format(number)
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        files.openai_pages.append(path)
        files.openai_requests += sum(
            result["num_model_requests"] for bucket in page for result in bucket["results"]
        )
    return files


def _count(rng: random.Random, expected: float) -> int:
    """A Poisson draw (Knuth for small means, the normal approximation above)."""
    if expected <= 0:
        return 0
    if expected > 30:
        return max(0, round(rng.gauss(expected, math.sqrt(expected))))
    limit, product, count = math.exp(-expected), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


_CUMULATIVE: dict[int, tuple[list[Any], list[float]]] = {}


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    # The weight tables are module constants, so their cumulative sums are worked out once.
    table = _CUMULATIVE.get(id(weights))
    if table is None:
        table = _CUMULATIVE[id(weights)] = (list(weights), list(itertools.accumulate(weights.values())))
    return rng.choices(table[0], cum_weights=table[1])[0]


def _gateway_day(plan: DemoPlan, day: dt.date, scale: float, pricer: Pricer) -> Iterator[dict]:
    rng = random.Random(f"{plan.seed}:gateway:{day.isoformat()}:{scale}")
    # Prompt wording comes from a stream of its own, so the amounts do not depend on the wording.
    wording = random.Random(f"{plan.seed}:prompts:{day.isoformat()}:{scale}")
    volume = day_volume(day)
    weekend = day.weekday() >= 5
    requests: list[tuple[dt.datetime, dict]] = []
    teams = {team.slug: team for team in plan.teams}
    for person in plan.people:
        team = teams[person.team]
        for _ in range(_count(rng, person.rate * volume * scale)):
            at = _request_time(rng, day, team, weekend)
            requests.append((at, _person_request(rng, wording, person, team, at, pricer)))
    automation = SERVICE_REQUESTS_PER_DAY * math.exp(GROWTH_PER_DAY * (day - GROWTH_ANCHOR).days) * scale
    for _ in range(_count(rng, automation)):
        at = dt.datetime.combine(day, dt.time(), tzinfo=_LONDON) + dt.timedelta(seconds=rng.randrange(86_400))
        requests.append((at, _automation_request(rng, at, pricer)))
    requests.sort(key=lambda item: item[0])
    for _, record in requests:
        yield record


def _request_time(rng: random.Random, day: dt.date, team: TeamSpec, weekend: bool) -> dt.datetime:
    mean, spread = team.working_hours
    hour = min(max(rng.gauss(mean, spread * (1.4 if weekend else 1.0)), 6.0), 23.95)
    seconds = int(hour * 3600) + rng.randrange(60)
    return dt.datetime.combine(day, dt.time(), tzinfo=_LONDON) + dt.timedelta(
        seconds=seconds, microseconds=rng.randrange(1000) * 1000
    )


def _lognormal(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    value = rng.lognormvariate(math.log(median), sigma)
    if value > high:
        value = high * rng.uniform(0.8, 1.0)  # people trim to just under the limit, not exactly to it
    return int(max(value, low))


def _person_request(
    rng: random.Random,
    wording: random.Random,
    person: PersonSpec,
    team: TeamSpec,
    at: dt.datetime,
    pricer: Pricer,
) -> dict:
    profile = TOKEN_MAXER_PROFILE if person.token_maxer else PROFILES[team.profile]
    smalltalk = rng.random() < (0.35 if person.chatty else 0.01)
    if smalltalk:
        # Greetings and weather questions sent to frontier models, behind a chat app's system prompt.
        model = OPUS41 if rng.random() < 0.5 else GPT5
        task: str | None = "chat-assistant"
        prompt = _lognormal(rng, 1_100, 0.5, 300, 3_000)
        output = _lognormal(rng, 120, 0.6, 20, 400)
        text = rng.choice(SMALLTALK)
    else:
        model = _pick(rng, profile.models)
        task = _pick(rng, profile.tasks)
        sigma = 0.3 if person.token_maxer else 0.9
        prompt = _lognormal(rng, profile.prompt_median, sigma, 200, model.max_prompt)
        output = _lognormal(rng, profile.output_median, 0.7, 15, 16_000)
        text = _prompt_text(rng, task, person.token_maxer)
        if not person.token_maxer:
            # Mostly work, with the trivial and personal questions real gateways see.
            text = demo_prompt(wording, team.profile, task)
    if team.slug == "support-tier-2" and task == "support-triage":
        task = "ticket-triage"
    if rng.random() < 0.08 and not smalltalk:
        task = None  # an app that sends no task tag
    alias = f"{team.slug}-{profile.app}"
    return _litellm_record(
        rng,
        pricer,
        at=at,
        model=model,
        user=person.email,
        team_id=team.gateway_team_id,
        team_alias=team.slug,
        key_alias=alias,
        app=profile.app,
        task=task,
        prompt=prompt,
        output=output,
        cached_share=rng.uniform(*profile.cached) if not smalltalk else rng.uniform(0.0, 0.5),
        text=text,
    )


def _automation_request(rng: random.Random, at: dt.datetime, pricer: Pricer) -> dict:
    team_id, alias = UNKNOWN_GATEWAY_TEAM
    # Written when Opus was the only model that did the job, and never revisited.
    model = OPUS41 if rng.random() < 0.5 else GPT41
    return _litellm_record(
        rng,
        pricer,
        at=at,
        model=model,
        user=rng.choice(SERVICE_ACCOUNTS),
        team_id=team_id,
        team_alias=alias,
        key_alias=f"{alias}-cron",
        app="cron",
        task=None,
        prompt=_lognormal(rng, 40_000, 0.5, 2_000, 150_000),
        output=_lognormal(rng, 700, 0.5, 50, 4_000),
        cached_share=rng.uniform(0.0, 0.3),
        text=rng.choice(AUTOMATION_PROMPTS),
    )


def _litellm_record(
    rng: random.Random,
    pricer: Pricer,
    *,
    at: dt.datetime,
    model: DemoModel,
    user: str,
    team_id: str,
    team_alias: str,
    key_alias: str,
    app: str,
    task: str | None,
    prompt: int,
    output: int,
    cached_share: float,
    text: str,
) -> dict:
    failed = rng.random() < 0.006
    cache_read = cache_write = reasoning = 0
    if prompt >= 1024:
        cache_read = int(prompt * cached_share)
        if model.anthropic_cache:
            cache_write = min(prompt - cache_read, int(prompt * rng.uniform(0.0, 0.15)))
        else:
            cache_read -= cache_read % 128  # OpenAI and Gemini cache in 128-token blocks
    if model.reasoning:
        reasoning = int(output * rng.uniform(0.3, 1.5))
    completion = output + reasoning
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    if model.anthropic_cache:
        usage["cache_creation_input_tokens"] = cache_write
        usage["cache_read_input_tokens"] = cache_read
    error = None
    spend = 0.0
    if failed:
        # LiteLLM logs a failed call with no tokens and no spend, and the error in the metadata.
        prompt = completion = 0
        usage = {}
        error = rng.choice(FAILURES)
    else:
        # LiteLLM prices with its own, coarser cost map: list prices as of the month's first day will do
        # (and spare the generator a price-table lookup per day and model).
        priced = pricer.price(
            provider=provider_slug(model.provider, model.name),
            model=model_name(model.name),
            at=dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC),
            counts=TokenCounts(
                prompt - cache_read - cache_write, cache_read, cache_write, 0, completion, reasoning
            ),
        )
        spend = priced[0] / NANOS_PER_USD if priced else 0.0  # an unpriceable model costs 0 in LiteLLM
    duration = (
        int(350 + prompt / 40 + completion * rng.uniform(8, 25)) if not failed else rng.randint(80, 2_000)
    )
    start = at.astimezone(dt.UTC)
    request_id = (
        f"chatcmpl-{rng.getrandbits(96):024x}"
        if model.provider == "openai"
        else str(uuid.UUID(int=rng.getrandbits(128), version=4))
    )
    key_hash = _key_hash(key_alias)
    status = "failure" if failed else "success"
    tags = [f"app:{app}"] + ([f"task:{task}"] if task else [])
    return {
        "request_id": request_id,
        "call_type": "acompletion",
        "api_key": key_hash,
        "spend": spend,
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "startTime": start.isoformat(),
        "endTime": (start + dt.timedelta(milliseconds=duration)).isoformat(),
        "request_duration_ms": duration,
        "model": model.name,
        "model_group": model.group,
        "custom_llm_provider": model.provider,
        "api_base": model.api_base,
        "user": user,
        "metadata": {
            "user_api_key_alias": key_alias,
            "user_api_key_team_id": team_id,
            "user_api_key_user_id": user,
            "user_api_key_team_alias": team_alias,
            "spend_logs_metadata": {"task": task} if task else None,
            "status": status,
            "error_information": error,
            "usage_object": usage,
        },
        "cache_hit": "False",
        "request_tags": tags,
        "team_id": team_id,
        "organization_id": _ORG_ID,
        "end_user": None,
        # Stored because the proxy runs with store_prompts_in_spend_logs; the prompt classifier reads it.
        "messages": [{"role": "user", "content": text}],
        "status": status,
    }


def _openai_bucket(seed: int, day: dt.date, scale: float) -> dict:
    rng = random.Random(f"{seed}:openai:{day.isoformat()}:{scale}")
    volume = day_volume(day)
    start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())
    results = []
    for group in OPENAI_GROUPS:
        requests = _count(rng, group.requests * volume * scale)
        if not requests:
            continue
        input_tokens = int(requests * group.input_per_request * rng.lognormvariate(0, 0.12))
        cached = int(input_tokens * group.cached * rng.uniform(0.8, 1.2))
        cached -= cached % 128
        output = int(requests * group.output_per_request * rng.lognormvariate(0, 0.15))
        results.append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": input_tokens,  # includes the cached tokens, as the API reports it
                "output_tokens": output,
                "num_model_requests": requests,
                "project_id": group.project_id,
                "user_id": None,
                "api_key_id": group.api_key_id,
                "model": group.model,
                "batch": None,
                "service_tier": None,
                "input_cached_tokens": cached,
                "input_uncached_tokens": input_tokens - cached,
                "input_text_tokens": input_tokens - cached,
                "input_audio_tokens": 0,
                "input_image_tokens": 0,
                "input_cache_write_tokens": 0,
                "input_cached_text_tokens": cached,
                "input_cached_audio_tokens": 0,
                "input_cached_image_tokens": 0,
                "output_text_tokens": output,
                "output_audio_tokens": 0,
                "output_image_tokens": 0,
            }
        )
    return {"object": "bucket", "start_time": start, "end_time": start + 86_400, "results": results}


# --- prompt texts -------------------------------------------------------------------------------------

SMALLTALK = (
    "how's it going?",
    "hi!",
    "good morning :)",
    "hello, are you there?",
    "how are you today?",
    "what's the weather in Leeds?",
    "is it going to rain in Leeds tomorrow?",
    "what's the weather like in Manchester this weekend?",
    "do I need an umbrella in London today?",
    "thanks, that's all",
    "tell me a joke about accountants",
    "who won the football last night?",
    "what should I have for lunch?",
    "recommend a film for tonight",
    "what's a good pub near King's Cross?",
    "ideas for my mum's birthday present?",
    "how many days until Christmas?",
    "write a limerick about Mondays",
)

AUTOMATION_PROMPTS = (
    "Summarise the following support tickets into a nightly digest for the on-call channel.",
    "Summarise this ticket thread in three bullet points for the CRM notes field.",
    "Produce the nightly KPI digest from the rows below.",
)

FAILURES = (
    {
        "error_class": "RateLimitError",
        "error_code": "429",
        "error_message": "Rate limit reached for requests",
    },
    {"error_class": "APIConnectionError", "error_code": "500", "error_message": "Connection reset by peer"},
    {"error_class": "ContextWindowExceededError", "error_code": "400", "error_message": "prompt is too long"},
    {"error_class": "Timeout", "error_code": "408", "error_message": "Request timed out after 600.0 seconds"},
)

_FILL = {
    "component": (
        "the payments retry worker",
        "the checkout API",
        "the iOS basket screen",
        "the ledger export job",
        "the feature-flag client",
        "the Kafka consumer group",
        "the React order history page",
    ),
    "concern": (
        "race conditions",
        "missing error handling",
        "N+1 queries",
        "unsafe SQL",
        "naming and readability",
        "test coverage gaps",
        "timezone bugs",
    ),
    "lang": ("Python", "TypeScript", "Kotlin", "Swift", "Go", "SQL"),
    "thing": (
        "parses ISO week numbers",
        "retries an HTTP call with jittered backoff",
        "validates an IBAN",
        "dedupes events by id within a window",
        "paginates a REST API",
    ),
    "goal": (
        "use dependency injection",
        "remove the global state",
        "split it into smaller functions",
        "drop the deprecated client",
    ),
    "company": (
        "Contoso",
        "Fabrikam",
        "Tailspin Toys",
        "Globex",
        "Initech",
        "Wayne Logistics",
        "Umbrella Retail",
    ),
    "issue": (
        "cannot reset their password",
        "was charged twice",
        "parcel shows delivered but never arrived",
        "wants to cancel their subscription",
        "gets a 502 on checkout",
        "invoice address is wrong",
    ),
    "who": ("a customer", "our supplier", "the auditors", "a candidate", "the landlord", "a partner"),
    "topic": (
        "a delayed delivery",
        "the renewal terms",
        "the Q3 invoice",
        "an interview slot",
        "a refund",
        "the contract extension",
    ),
    "period": ("weekly", "monthly", "quarterly"),
    "report": ("sales pipeline", "support SLA", "cloud cost", "cash flow", "headcount", "churn"),
    "metric": ("churn", "basket size", "ticket volume", "conversion", "refund rate"),
    "contract": ("master services agreement", "NDA", "data processing agreement", "reseller agreement"),
    "meeting": (
        "the sprint review",
        "the pricing committee",
        "the weekly pipeline call",
        "the incident review",
    ),
    "screen": ("checkout", "onboarding", "settings", "order tracking"),
    "language": ("German", "French", "Spanish", "Polish", "Japanese"),
    "pair": (
        ("OAuth", "SAML"),
        ("a mutex", "a semaphore"),
        ("IFRS 15", "ASC 606"),
        ("a CTE", "a subquery"),
        ("gross margin", "contribution margin"),
        ("a VLOOKUP", "an XLOOKUP"),
    ),
    "campaign": ("the spring sale", "the new loyalty scheme", "the Leeds store opening", "the B2B webinar"),
}

_TEMPLATES = {
    "support-triage": (
        "Classify this ticket and suggest a priority: the customer {issue}.",
        "Which queue should this go to? Customer {issue}.",
    ),
    "code-review": (
        "Review this diff to {component} for {concern}.",
        "Is this change to {component} safe to merge? Look for {concern}.",
    ),
    "code-generation": (
        "Write a {lang} function that {thing}.",
        "Add unit tests in {lang} for code that {thing}.",
    ),
    "refactoring": ("Refactor {component} to {goal} without changing behaviour.",),
    "sales-research": (
        "Summarise {company}'s recent news and who owns their AI budget.",
        "Draft discovery questions for our call with {company}.",
    ),
    "chat-assistant": (
        "Explain the difference between {pair[0]} and {pair[1]} in two paragraphs.",
        "What is {pair[0]}, briefly, and when would I use it instead of {pair[1]}?",
    ),
    "email-drafting": (
        "Draft a polite reply to {who} about {topic}.",
        "Make this email to {who} about {topic} shorter.",
    ),
    "report-writing": ("Write the executive summary of the {period} {report} report from these figures.",),
    "data-analysis": (
        "Find the drivers of {metric} in the attached CSV and suggest a chart.",
        "Write a SQL query for {metric} by region and month.",
    ),
    "contract-review": ("Flag unusual clauses in this {contract} from {company}.",),
    "meeting-summaries": ("Summarise {meeting} into decisions and action items.",),
    "translation": ("Translate the {screen} screen strings into {language}.",),
    "content-writing": (
        "Write three subject lines and a 150-word email for {campaign}.",
        "Draft a LinkedIn post announcing {campaign}.",
    ),
}

_TOKEN_MAXER_TEMPLATES = (
    "Here is the whole monorepo. Find every place that has {concern} and fix them all.",
    "Attached: all 40 {contract}s with {company}. Compare every clause across them.",
    "Here are the full logs for the last week. Explain every error in {component}.",
    "Read the entire codebase below and rewrite {component} to {goal}.",
)


def _prompt_text(rng: random.Random, task: str, token_maxer: bool) -> str:
    template = rng.choice(_TOKEN_MAXER_TEMPLATES if token_maxer else _TEMPLATES[task])
    slots = {name: rng.choice(values) for name, values in _FILL.items() if "{" + name in template}
    return template.format(**slots)


# --- loading --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoLogin:
    email: str
    role: str
    password: str
    sees: str


@dataclass(frozen=True, slots=True)
class DemoTotals:
    rows: int
    requests: int
    cost_usd: Decimal
    unattributed_cost_usd: Decimal
    unpriced_rows: int
    failed_rows: int


@dataclass(slots=True)
class DemoResult:
    organisation: Organisation
    files: DemoFiles
    runs: list[IngestionRun]
    logins: list[DemoLogin] = field(default_factory=list)


def load_demo(
    today: dt.date | None = None,
    *,
    scale: float = 1.0,
    directory: Path | None = None,
    seed: int = DEMO_SEED,
) -> DemoResult:
    """Build the demo org, write its usage files and ingest them through the pipeline; safe to repeat."""
    today = today or timezone.now().date()
    directory = directory or Path(settings.VAR_DIR) / "demo"
    plan = demo_plan(seed)
    organisation = build_demo_org(plan)
    files = write_demo_files(plan, today, directory, scale=scale)
    runs = []
    for (name, format), paths in ((LITELLM_SOURCE, [files.litellm]), (OPENAI_SOURCE, files.openai_pages)):
        source = source_get_or_create(organisation=organisation, name=name, format=format)
        runs.append(ingest_files(source=source, format=format, paths=paths))
    return DemoResult(organisation, files, runs, demo_logins_create(organisation))


def demo_logins_create(organisation: Organisation) -> list[DemoLogin]:
    teams = {team.slug: team for team in Team.objects.filter(organisation=organisation)}
    people = {person.email: person for person in Person.objects.filter(organisation=organisation)}
    logins: list[tuple[str, Role, Person | None, Sequence[Team]]] = [
        (f"cio@{EMAIL_DOMAIN}", Role.CIO, None, ()),
        (f"finops@{EMAIL_DOMAIN}", Role.FINOPS, None, ()),
        (ENGINEERING_MANAGER, Role.MANAGER, people[ENGINEERING_MANAGER], [teams["engineering"]]),
        (TIER1_MANAGER, Role.MANAGER, people[TIER1_MANAGER], [teams["support-tier-1"]]),
        (DEMO_MEMBER, Role.MEMBER, people[DEMO_MEMBER], ()),
    ]
    for email, role, person, managed in logins:
        membership_create(
            organisation=organisation,
            email=email,
            password=DEMO_PASSWORD,
            role=role,
            person=person,
            managed_teams=managed,
        )

    def sees(role: Role, person: Person | None, managed: Sequence[Team]) -> str:
        if managed:
            return ", ".join(team.name for team in managed) + " and the teams below"
        if role == Role.MEMBER and person is not None:
            return f"own usage ({person.name})"
        return "the whole organisation"

    return [
        DemoLogin(email, role.value, DEMO_PASSWORD, sees(role, person, managed))
        for email, role, person, managed in logins
    ]


def demo_totals(organisation: Organisation) -> DemoTotals:
    facts = UsageFact.objects.filter(organisation=organisation)
    totals = facts.aggregate(
        rows=Count("id"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
        unattributed=Sum("cost_nanos", filter=Q(team__isnull=True)),
        unpriced=Count("id", filter=Q(cost_nanos__isnull=True)),
        failed=Count("id", filter=Q(failed=True)),
    )

    def usd(nanos: int | None) -> Decimal:
        return (Decimal(nanos or 0) / NANOS_PER_USD).quantize(Decimal("0.01"))

    return DemoTotals(
        rows=totals["rows"],
        requests=totals["requests"] or 0,
        cost_usd=usd(totals["cost"]),
        unattributed_cost_usd=usd(totals["unattributed"]),
        unpriced_rows=totals["unpriced"],
        failed_rows=totals["failed"],
    )
