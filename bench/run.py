"""Ingestion benchmark: PERFORMANCE.md ING-1, ING-2, ING-4 and ING-5, with their references measured alongside.

    make bench                                    # DATABASE_URL exported by scripts/with_services.sh
    .venv/bin/python bench/run.py [--lines N] [--rounds R] [--quick] [--rss-2x] [--shape full|lean]
    .venv/bin/python bench/run.py --profile [N]   # cProfile of one ingest and one re-ingest of N lines

Every figure is measured in this run, on this machine, against the product's own fact-table schema:

- product    `manage.py ingest --format litellm_spend_logs --source bench FILE` into an empty fact table
             (a subprocess, wall time including Django start-up), lines/s and its peak RSS;
- re-ingest  the same command again on the now-full table: accepted 0, every total unchanged;
- R_copy     one `COPY usage_usagefact_ref (...) FROM 'file.csv'` of the same rows, already in the fact
             table's column layout, into an empty copy of the fact table (LIKE ... INCLUDING ALL: same
             indexes, no foreign keys) - the write capacity of this server for this schema;
- R_parse    orjson.loads, one line at a time, over the same JSONL file (in this process);
- adapter    the LiteLLM adapter alone (parse + normalise, no database), in this process.

Rounds are interleaved (each round: truncate, then product + re-ingest and R_copy in alternating order,
then R_parse and adapter) and the goals are checked on the median of the per-round ratios. Only
127.0.0.1 is ever contacted. The database named by DATABASE_URL is used only to drop and create
`spendwatch_bench` next to it; the benchmark works in that one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
import urllib.parse
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from apps.usage.columns import FACT_COLUMNS, TOKEN_COLUMNS  # noqa: E402 - Django-free constants

VAR = ROOT / "var" / "bench"
# The CSV for the server-side COPY must be readable by the server's own user: not under a home directory.
SERVER_READABLE_DIR = Path("/tmp/spendwatch-bench")
MANAGE = [sys.executable, str(ROOT / "manage.py")]
BENCH_DB = "spendwatch_bench"
SOURCE = "bench"
FORMAT = "litellm_spend_logs"
ORG_TZ = "Europe/Berlin"  # not UTC, so the organisation-local day is really computed

GEN_VERSION = 1  # bump when the generated data changes: cached files are keyed by it
DEFAULT_LINES = 1_000_000
QUICK_LINES = 50_000
PROFILE_LINES = 100_000
SPAN_DAYS = 30
START = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
BAD_EVERY = 20_011  # one deliberately invalid line per this many (a prime, so it wanders through batches)

# Goals (PERFORMANCE.md section 3.1).
GOAL_ING1_RATIO = 0.35
GOAL_ING1_ABS = 55_000
GOAL_ING2_RATIO = 0.45
GOAL_ING4_RATIO = 0.8
GOAL_ING5_MIB = 150
GOAL_ING5_2X = 1.1

# Emptied before every round; RawIdentity too, so that every round resolves its identities afresh.
TRUNCATE = (
    "usage_usagefact",
    "usage_usagefact_ref",
    "usage_dailyrollup",
    "ingestion_rejectedrow",
    "ingestion_ingestionrun",
    "org_rawidentity",
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The synthetic organisation and its traffic
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSpec:
    provider: str  # LiteLLM's custom_llm_provider
    model: str
    group: str  # LiteLLM model_group (the router's alias)
    weight: float  # share of traffic
    usd_in: float  # per 1M tokens, for LiteLLM's own `spend` figure
    usd_out: float
    cache: str  # "openai": cached_tokens inside prompt_tokens_details; "anthropic": read/creation counts
    reasoning: bool = False
    long_context: bool = False  # a few prompts above 200k tokens (tiered prices)
    embedding: bool = False
    known: bool = True  # False: no price data knows it (stored unpriced)


OPENAI_BASE = "https://api.openai.com/v1"
MODELS = (
    ModelSpec("openai", "gpt-4.1-2025-04-14", "gpt-4.1", 10, 2.0, 8.0, "openai"),
    ModelSpec("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", 14, 0.4, 1.6, "openai"),
    ModelSpec("openai", "gpt-4.1-nano", "gpt-4.1-nano", 4, 0.1, 0.4, "openai"),
    ModelSpec("openai", "gpt-4o-mini", "gpt-4o-mini", 6, 0.15, 0.6, "openai"),
    ModelSpec("openai", "o4-mini", "o4-mini", 4, 1.1, 4.4, "openai", reasoning=True),
    ModelSpec("openai", "gpt-5", "gpt-5", 5, 1.25, 10.0, "openai", reasoning=True),
    ModelSpec("openai", "gpt-5-mini", "gpt-5-mini", 6, 0.25, 2.0, "openai", reasoning=True),
    ModelSpec("openai", "text-embedding-3-small", "embeddings", 5, 0.02, 0.0, "none", embedding=True),
    ModelSpec("azure", "gpt-4o", "azure-gpt-4o", 3, 2.5, 10.0, "openai"),
    ModelSpec(
        "anthropic",
        "claude-sonnet-4-20250514",
        "claude-sonnet",
        10,
        3.0,
        15.0,
        "anthropic",
        long_context=True,
    ),
    ModelSpec("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4.5", 6, 3.0, 15.0, "anthropic"),
    ModelSpec("anthropic", "claude-haiku-4-5-20251001", "claude-haiku", 8, 1.0, 5.0, "anthropic"),
    ModelSpec("anthropic", "claude-opus-4-1-20250805", "claude-opus", 1.5, 15.0, 75.0, "anthropic"),
    ModelSpec(
        "bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "bedrock-claude", 4, 3.0, 15.0, "anthropic"
    ),
    ModelSpec("vertex_ai", "gemini-2.5-flash", "gemini-flash", 8, 0.3, 2.5, "openai", reasoning=True),
    ModelSpec(
        "vertex_ai",
        "gemini-2.5-pro",
        "gemini-pro",
        3,
        1.25,
        10.0,
        "openai",
        reasoning=True,
        long_context=True,
    ),
    ModelSpec("gemini", "gemini-2.0-flash", "gemini-2.0-flash", 3, 0.1, 0.4, "openai"),
    ModelSpec("mistral", "mistral-small-latest", "mistral-small", 1.5, 0.1, 0.3, "none"),
    ModelSpec("groq", "llama-3.3-70b-versatile", "llama-70b", 1.5, 0.59, 0.79, "none"),
    ModelSpec("hosted_vllm", "acme-internal-coder-v2", "internal-coder", 2, 0.5, 0.5, "none", known=False),
)
API_BASES = {
    "openai": OPENAI_BASE,
    "azure": "https://northwind-eastus.openai.azure.com/",
    "anthropic": "https://api.anthropic.com/v1/messages",
    "bedrock": "https://bedrock-runtime.us-east-1.amazonaws.com",
    "vertex_ai": "https://us-central1-aiplatform.googleapis.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "hosted_vllm": "http://vllm.internal.northwind.example:8000/v1",
}
AREAS = (
    "data-science sales-ops support platform search payments growth marketing legal finance hr security "
    "mobile web infra ml-research analytics customer-success partnerships procurement design qa devex "
    "billing identity"
).split()
TASKS = (
    "code-review refactor eda report triage email-draft summarise translate weather-question smalltalk "
    "classification extraction rag-answer sql-gen test-gen doc-writing meeting-notes contract-review "
    "ticket-reply lead-scoring churn-analysis forecast onboarding policy-qa incident-summary log-analysis "
    "pr-description commit-message spec-drafting ux-copy seo ad-copy invoice-parse kyc-check fraud-review "
    "resume-screen interview-notes research brainstorm chat"
).split()
APPS = "copilot notebook crm helpdesk slackbot ide docs search pipeline agent".split()
FIRST = (
    "alice bob chen dana eve farid grace hiro ines jon kara liam mei nina omar priya quinn rosa sam tara "
    "umar vera wei xena yusuf zoe aaron bianca carlos dmitri elena femi gita hugo ivan julia kenji lena "
    "marco nadia oscar paula rahul sofia tomas uma viktor wanda xavier yara zane amara boris clara diego"
).split()
LAST = (
    "nguyen okafor wei kowalski smith garcia muller rossi tanaka kim novak silva haddad singh ivanova "
    "johansson dubois lopez petrov schmidt costa yilmaz sato park berg moreau russo kaur fischer ali "
    "martin brown taylor wilson khan cohen hansen weber fontaine bianchi nakamura choi reyes santos "
    "jensen lindqvist murphy obrien walsh dalton"
).split()


@dataclass(slots=True)
class Team:
    pk: int
    team_id: str  # the gateway's id
    alias: str
    tasks: list[str]
    apps: list[str]


@dataclass(slots=True)
class Key:
    hash: str
    alias: str
    app: str
    team: Team
    customers: bool = False  # a service key answering end customers (end_user set)


@dataclass(slots=True)
class User:
    pk: int
    email: str
    name: str
    team: Team
    keys: list[Key]
    tasks: list[str]
    ip: str


@dataclass(slots=True)
class World:
    """~50 teams, 2,000 people, their API keys and tasks, and 50 team service keys; fixed by the seed."""

    teams: list[Team]
    users: list[User]
    service_keys: list[Key]
    customers: list[str]
    user_cum: list[float] = field(default_factory=list)
    model_cum: list[float] = field(default_factory=list)

    @classmethod
    def build(cls, seed: int) -> World:
        rng = random.Random(f"world-{seed}")
        aliases = [*AREAS, *(f"{area}-emea" for area in AREAS)]
        teams = [
            Team(n + 1, f"team-{rng.getrandbits(24):06x}", alias, rng.sample(TASKS, 4), rng.sample(APPS, 2))
            for n, alias in enumerate(aliases)
        ]
        team_cum = list(accumulate(1 / (n + 1) ** 0.7 for n in range(len(teams))))
        names = [(first, last) for first in FIRST for last in LAST]
        rng.shuffle(names)
        users = []
        for n, (first, last) in enumerate(names[:2000]):
            team = teams[bisect_right(team_cum, rng.random() * team_cum[-1])]
            keys = [
                Key(f"{rng.getrandbits(256):064x}", f"{first}-{app}", app, team)
                for app in rng.sample(team.apps, 1 if rng.random() < 0.7 else 2)
            ]
            ip = f"10.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            tasks = rng.sample(team.tasks, rng.choice((1, 2, 2, 3)))
            users.append(
                User(
                    n + 1,
                    f"{first}.{last}@northwind.example",
                    f"{first} {last}".title(),
                    team,
                    keys,
                    tasks,
                    ip,
                )
            )
        service_keys = [Key(f"{rng.getrandbits(256):064x}", f"{t.alias}-svc", t.apps[0], t) for t in teams]
        for key in rng.sample(service_keys, 10):
            key.customers = True
        customers = [f"customer-{rng.getrandbits(32):08x}" for _ in range(40)]
        activity = [1 / (rank + 1) ** 0.9 for rank in range(len(users))]
        rng.shuffle(activity)
        world = cls(teams, users, service_keys, customers)
        world.user_cum = list(accumulate(activity))
        world.model_cum = list(accumulate(spec.weight for spec in MODELS))
        return world


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="microseconds")


def _lognormal_int(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return max(low, min(high, int(rng.lognormvariate(0, sigma) * median)))


LEAN_TOP = (
    "request_id startTime model custom_llm_provider api_key user team_id spend prompt_tokens "
    "completion_tokens status cache_hit request_tags end_user"
).split()
LEAN_METADATA = ("user_api_key_alias", "user_api_key_team_alias", "spend_logs_metadata")


def _lean(record: dict) -> dict:
    """Only the fields the adapter reads, without nulls (the ~330 bytes/line PERFORMANCE.md measured)."""
    out = {key: record[key] for key in LEAN_TOP if record.get(key) is not None}
    metadata = record["metadata"]
    lean_meta = {key: metadata[key] for key in LEAN_METADATA if metadata.get(key) is not None}
    usage = metadata.get("usage_object")
    if usage:
        lean_usage = {
            k: v for k, v in usage.items() if k not in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
        for details in ("prompt_tokens_details", "completion_tokens_details"):
            if isinstance(lean_usage.get(details), dict):
                lean_usage[details] = {k: v for k, v in lean_usage[details].items() if v is not None}
        lean_meta["usage_object"] = lean_usage
    out["metadata"] = lean_meta
    return out


class Traffic:
    """Line i of the spend log: the LiteLLM record, and the fact row it should become (for R_copy).

    Deterministic: the same seed and line count give the same bytes. Timestamps advance with i over
    SPAN_DAYS with a few seconds of jitter (the near-time order of a real export).
    """

    def __init__(self, world: World, lines: int, seed: int) -> None:
        self.world = world
        self.lines = lines
        self.rng = random.Random(f"traffic-{seed}-{lines}")
        self.start_ms = int(START.timestamp() * 1000)
        self.step_ms = SPAN_DAYS * 86_400_000 / lines
        self.tz = ZoneInfo(ORG_TZ)
        self.providers = {name: n + 1 for n, name in enumerate(dict.fromkeys(s.provider for s in MODELS))}
        self.raw_identities: dict[tuple, int] = {}
        self.rejects = 0

    def __iter__(self) -> Iterator[tuple[dict | bytes, str | None]]:
        for i in range(self.lines):
            yield self.line(i)

    def line(self, i: int) -> tuple[dict | bytes, str | None]:
        rng, world = self.rng, self.world
        r = rng.random
        ms = max(self.start_ms, int(self.start_ms + (i + rng.uniform(-3, 3)) * self.step_ms))
        if r() < 0.08:
            key = world.service_keys[rng.randrange(len(world.service_keys))]
            user = None
            task = rng.choice(key.team.tasks)
            end_user = rng.choice(world.customers) if key.customers and r() < 0.6 else None
            ip = "10.40.0.12"
        else:
            user = world.users[bisect_right(world.user_cum, r() * world.user_cum[-1])]
            key = user.keys[0] if len(user.keys) == 1 or r() < 0.7 else user.keys[1]
            task = user.tasks[rng.randrange(len(user.tasks))]
            end_user, ip = None, user.ip
        model_index = bisect_right(world.model_cum, r() * world.model_cum[-1])
        spec = MODELS[model_index]
        team = key.team

        failed = r() < 0.015
        cache_hit = not failed and r() < 0.01
        if spec.long_context and r() < 0.003:
            prompt = rng.randrange(200_001, 600_000)
        else:
            prompt = _lognormal_int(rng, 1_500, 1.2, 8, 190_000)
        completion = 0 if spec.embedding else _lognormal_int(rng, 300, 1.0, 1, 32_000)
        reasoning = int(completion * rng.uniform(0.3, 0.8)) if spec.reasoning and r() < 0.7 else 0
        cache_read = cache_write = cache_write_1h = 0
        usage: dict = {}
        if spec.cache == "openai":
            if prompt >= 1024 and r() < 0.45:
                cache_read = int(prompt * rng.uniform(0.2, 0.9)) // 128 * 128
            usage = {
                "prompt_tokens_details": {"cached_tokens": cache_read, "audio_tokens": None},
                "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": None},
            }
        elif spec.cache == "anthropic":
            if r() < 0.5:
                cache_read = int(prompt * rng.uniform(0.3, 0.9))
            if r() < 0.15:
                cache_write = int((prompt - cache_read) * rng.uniform(0.2, 0.9))
                if r() < 0.2:
                    cache_write_1h = cache_write // 2
            usage = {
                "prompt_tokens_details": {"cached_tokens": cache_read, "audio_tokens": None},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": None},
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
            }
            if cache_write_1h:
                usage["cache_creation"] = {
                    "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
                    "ephemeral_1h_input_tokens": cache_write_1h,
                }
        if failed:
            prompt = completion = reasoning = cache_read = cache_write = cache_write_1h = 0
            usage = {}
        uncached = prompt - cache_read - cache_write
        read_rate = 0.25 if spec.provider in ("openai", "azure") else 0.1
        spend = (
            uncached * spec.usd_in
            + cache_read * spec.usd_in * read_rate
            + cache_write * spec.usd_in * 1.25
            + completion * spec.usd_out
        ) / 1e6
        spend = 0.0 if failed or cache_hit else round(spend, 8)
        duration = _lognormal_int(rng, 2_500, 0.8, 50, 300_000)
        if spec.provider in ("openai", "azure"):
            request_id = f"chatcmpl-{rng.getrandbits(96):024x}"
        else:
            request_id = _uuid(rng)
        tags = [f"app:{key.app}", f"task:{task}"]
        if r() < 0.3:
            tags.append("env:prod")
        status = "failure" if failed else "success"
        email = user.email if user else None
        usage_object = None
        if usage:
            usage_object = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                **usage,
            }
        error = None
        if failed:
            error = {
                "error_class": "RateLimitError" if r() < 0.7 else "APIConnectionError",
                "error_message": "litellm.RateLimitError: rate limit exceeded, retry later",
                "llm_provider": spec.provider,
                "error_code": "429",
            }
        record = {
            "request_id": request_id,
            "call_type": "aembedding" if spec.embedding else "acompletion",
            "api_key": key.hash,
            "spend": spend,
            "total_tokens": prompt + completion,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "startTime": _iso(ms),
            "endTime": _iso(ms + duration),
            "request_duration_ms": duration,
            "completionStartTime": _iso(ms + duration // 3),
            "model": spec.model,
            "model_id": f"{(model_index * 7919 + 13) * 2654435761 % 2**128:032x}",
            "model_group": spec.group,
            "custom_llm_provider": spec.provider,
            "api_base": API_BASES[spec.provider],
            "user": email,
            "metadata": {
                "user_api_key": key.hash,
                "user_api_key_alias": key.alias,
                "user_api_key_team_id": team.team_id,
                "user_api_key_org_id": "org-northwind-01",
                "user_api_key_user_id": email,
                "user_api_key_team_alias": team.alias,
                "spend_logs_metadata": {"task": task} if r() < 0.6 else None,
                "requester_ip_address": ip,
                "applied_guardrails": [],
                "status": status,
                "proxy_server_request": None,
                "batch_models": None,
                "error_information": error,
                "usage_object": usage_object,
                "additional_usage_values": {},
            },
            "cache_hit": "True" if cache_hit else "False",
            "cache_key": "Cache OFF",
            "request_tags": tags,
            "team_id": team.team_id,
            "organization_id": "org-northwind-01",
            "end_user": end_user,
            "requester_ip_address": ip,
            "messages": {},
            "response": {},
            "session_id": None,
            "status": status,
            "mcp_namespaced_tool_name": None,
            "agent_id": None,
            "proxy_server_request": {},
        }
        if i % BAD_EVERY == BAD_EVERY // 2:
            self.rejects += 1
            kind = (i // BAD_EVERY) % 4
            if kind == 0:
                return orjson.dumps(record)[:-40], None  # a truncated line: invalid JSON
            if kind == 1:
                record["startTime"] = "yesterday, about noon"
            elif kind == 2:
                record["model"] = record["model_group"] = None
            else:
                record["prompt_tokens"] = -5
            return record, None

        if cache_hit:
            uncached = cache_read = cache_write = cache_write_1h = completion = reasoning = 0
        identity = (email, key.hash, key.alias, team.team_id, team.alias, task, end_user)
        raw_identity = self.raw_identities.setdefault(identity, len(self.raw_identities) + 1)
        day = dt.datetime.fromtimestamp(ms / 1000, tz=self.tz).date().isoformat()
        reported = round(spend * 1e9)
        if failed:
            cost: int | str = reported
        elif spec.known:
            cost = reported
        else:
            cost = ""
        values = (
            1,  # source
            _iso(ms),
            request_id,
            1,  # organisation
            day,
            0,  # grain: request
            1,  # run
            self.providers[spec.provider],
            model_index + 1,
            team.pk,
            user.pk if user else "",
            TASKS.index(task) + 1,
            raw_identity,
            uncached,
            cache_read,
            cache_write - cache_write_1h,
            cache_write_1h,
            completion,
            reasoning,
            1,  # requests
            "t" if failed else "f",
            "f",  # batch
            cost,
            reported,
            model_index + 1 if spec.known and not failed else "",
        )
        return record, ",".join(map(str, values))


# --------------------------------------------------------------------------------------------------
# Cached input files
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataFiles:
    jsonl: Path
    csv: Path
    meta: dict


def _stem(lines: int, seed: int) -> str:
    return f"litellm-{lines}-s{seed}-v{GEN_VERSION}"


def data_files(lines: int, seed: int, shape: str) -> DataFiles:
    """The JSONL (var/bench) and fact-layout CSV (/tmp, server-readable) for this line count; made once."""
    VAR.mkdir(parents=True, exist_ok=True)
    SERVER_READABLE_DIR.mkdir(parents=True, exist_ok=True)
    SERVER_READABLE_DIR.chmod(0o755)
    stem = _stem(lines, seed)
    jsonl = VAR / f"{stem}-{shape}.jsonl"
    meta_path = VAR / f"{stem}-{shape}.meta.json"
    csv_path = SERVER_READABLE_DIR / f"{stem}.csv"
    csv_meta_path = SERVER_READABLE_DIR / f"{stem}.csv.meta.json"
    need_json = not (jsonl.exists() and meta_path.exists())
    need_csv = not (csv_path.exists() and csv_meta_path.exists())
    if need_json or need_csv:
        what = " and ".join(name for name, needed in (("JSONL", need_json), ("CSV", need_csv)) if needed)
        log(f"generating {lines:,} lines ({shape}): {what} (cached for later runs)")
        started = time.perf_counter()
        traffic = Traffic(World.build(seed), lines, seed)
        json_tmp, csv_tmp = jsonl.with_suffix(".tmp"), csv_path.with_suffix(".tmp")
        rows = 0
        with contextlib.ExitStack() as stack:
            json_out = stack.enter_context(json_tmp.open("wb", buffering=1 << 20)) if need_json else None
            csv_out = stack.enter_context(csv_tmp.open("w", buffering=1 << 20)) if need_csv else None
            for record, fact in traffic:
                if json_out is not None:
                    if isinstance(record, bytes):
                        json_out.write(record + b"\n")
                    else:
                        json_out.write(orjson.dumps(record if shape == "full" else _lean(record)) + b"\n")
                if fact is not None:
                    rows += 1
                    if csv_out is not None:
                        csv_out.write(fact + "\n")
        meta = {
            "lines": lines,
            "seed": seed,
            "generator_version": GEN_VERSION,
            "expected_rejects": traffic.rejects,
            "fact_rows": rows,
            "identity_combinations": len(traffic.raw_identities),
            "models": len(MODELS),
            "teams": len(traffic.world.teams),
            "people": len(traffic.world.users),
            "span_days": SPAN_DAYS,
        }
        if need_json:
            json_tmp.replace(jsonl)
            meta_path.write_bytes(orjson.dumps({**meta, "shape": shape, "bytes": jsonl.stat().st_size}))
        if need_csv:
            csv_tmp.chmod(0o644)
            csv_tmp.replace(csv_path)
            csv_meta_path.write_bytes(orjson.dumps({**meta, "bytes": csv_path.stat().st_size}))
        log(f"generated in {time.perf_counter() - started:.1f} s")
    meta = orjson.loads(meta_path.read_bytes())
    return DataFiles(jsonl, csv_path, meta)


# --------------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    url: str  # the bench database's URL (what the product subprocesses get)
    params: dict  # psycopg connect() keywords for the bench database
    admin_params: dict  # ... for the database DATABASE_URL names (to drop/create the bench database)


def server_from_env() -> Server:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit(
            "bench: DATABASE_URL is not set; run `make bench`, or export DATABASE_URL=postgres://…@127.0.0.1:PORT/db"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"bench: DATABASE_URL must be a PostgreSQL URL, got scheme {parts.scheme!r}")
    if parts.hostname != "127.0.0.1":
        sys.exit(f"bench: refusing to benchmark against {parts.hostname!r}: only 127.0.0.1 is allowed")
    base = {
        "host": "127.0.0.1",
        "port": parts.port or 5432,
        "user": urllib.parse.unquote(parts.username or ""),
        "password": urllib.parse.unquote(parts.password or ""),
        "connect_timeout": 10,
        "application_name": "spendwatch-bench",
    }
    admin_db = urllib.parse.unquote(parts.path.lstrip("/")) or "postgres"
    if admin_db == BENCH_DB:
        admin_db = "postgres"
    bench_url = urllib.parse.urlunsplit(parts._replace(path=f"/{BENCH_DB}"))
    return Server(bench_url, {**base, "dbname": BENCH_DB}, {**base, "dbname": admin_db})


def connect(params: dict) -> psycopg.Connection:
    return psycopg.connect(**params, autocommit=True)


def recreate_database(server: Server) -> None:
    with connect(server.admin_params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def drop_database(server: Server) -> None:
    with connect(server.admin_params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))


def child_env(server: Server) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=server.url, DJANGO_SETTINGS_MODULE="spendwatch.settings", DEBUG="0")
    return env


def migrate(server: Server) -> None:
    done = subprocess.run(
        [*MANAGE, "migrate", "--noinput"], cwd=ROOT, env=child_env(server), capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"bench: migrate failed:\n{done.stdout}\n{done.stderr}")


def setup_organisation(server: Server, world: World) -> dict:
    """The organisation, its teams, people, tasks and gateway identities, and the `bench` data source."""
    os.environ.update(DATABASE_URL=server.url, DJANGO_SETTINGS_MODULE="spendwatch.settings", DEBUG="0")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections, transaction

    from apps.ingestion.models import DataSource
    from apps.org.models import Identity, IdentityKind, Organisation, Person, Task
    from apps.org.models import Team as TeamModel

    with transaction.atomic():
        org = Organisation.objects.create(name="Northwind (bench)", slug="bench", time_zone=ORG_TZ)
        teams = TeamModel.objects.bulk_create(
            TeamModel(organisation=org, name=team.alias, slug=team.alias) for team in world.teams
        )
        Person.objects.bulk_create(
            Person(organisation=org, email=user.email, name=user.name, team=teams[user.team.pk - 1])
            for user in world.users
        )
        Task.objects.bulk_create(Task(organisation=org, key=key, name=key.replace("-", " ")) for key in TASKS)
        Identity.objects.bulk_create(
            [
                *(
                    Identity(organisation=org, kind=IdentityKind.GATEWAY_TEAM, value=team.team_id, team=model)
                    for team, model in zip(world.teams, teams, strict=True)
                ),
                *(
                    Identity(
                        organisation=org,
                        kind=IdentityKind.API_KEY,
                        value=key.hash,
                        team=teams[key.team.pk - 1],
                    )
                    for key in world.service_keys
                ),
            ]
        )
        DataSource.objects.create(organisation=org, name=SOURCE, format=FORMAT)
    batch_rows = settings.SPENDWATCH_INGEST_BATCH_ROWS
    connections.close_all()
    return {"batch_rows": batch_rows, "org_time_zone": ORG_TZ}


@dataclass(slots=True)
class Capabilities:
    copy_from_file: bool
    copy_note: str
    checkpoint: bool
    settings: dict


def probe_server(conn: psycopg.Connection) -> Capabilities:
    names = (
        "server_version fsync synchronous_commit full_page_writes wal_level wal_compression shared_buffers "
        "max_wal_size checkpoint_timeout work_mem maintenance_work_mem effective_io_concurrency"
    ).split()
    settings = {
        name: conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0]  # type: ignore[index]
        for name in names
    }
    settings["superuser"] = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()[0]  # type: ignore[index]
    try:
        conn.execute("CHECKPOINT")
        checkpoint = True
    except psycopg.errors.InsufficientPrivilege:
        checkpoint = False
    probe = SERVER_READABLE_DIR / "probe.csv"
    probe.write_text("1\n")
    probe.chmod(0o644)
    try:
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE bench_probe (x int)")
            conn.execute(sql.SQL("COPY bench_probe FROM {}").format(sql.Literal(str(probe))))
            conn.execute("DROP TABLE bench_probe")
        return Capabilities(True, "server-side COPY ... FROM 'file' (FORMAT csv)", checkpoint, settings)
    except psycopg.Error as error:
        reason = (error.diag.message_primary or str(error)).strip()
        note = f"COPY ... FROM STDIN via psycopg (server-side COPY FROM file refused: {reason})"
        return Capabilities(False, note, checkpoint, settings)


def create_reference_table(conn: psycopg.Connection) -> None:
    # LIKE ... INCLUDING ALL copies columns, defaults, identity, constraints and every index (the unique
    # natural key, the org/day b-tree, the BRIN on ts), but no foreign keys. LIKE of the partitioned fact
    # table (PostgreSQL) makes one plain table with its indexes and primary key (id, ts), no partitions.
    conn.execute("DROP TABLE IF EXISTS usage_usagefact_ref")
    conn.execute("CREATE TABLE usage_usagefact_ref (LIKE usage_usagefact INCLUDING ALL)")


def truncate_all(conn: psycopg.Connection) -> None:
    conn.execute(
        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(map(sql.Identifier, TRUNCATE))
        )
    )


def checkpoint(conn: psycopg.Connection, caps: Capabilities) -> None:
    """Start each timed step with no dirty buffers left over from the one before (when allowed)."""
    if caps.checkpoint:
        conn.execute("CHECKPOINT")


def fact_totals(conn: psycopg.Connection, table: str = "usage_usagefact") -> dict:
    sums = [sql.SQL("SUM({})").format(sql.Identifier(column)) for column in TOKEN_COLUMNS]
    query = sql.SQL(
        "SELECT COUNT(*), COUNT(cost_nanos), SUM(cost_nanos), SUM(reported_cost_nanos), SUM(requests), "
        "SUM(CASE WHEN failed THEN 1 ELSE 0 END), {} FROM {}"
    ).format(sql.SQL(", ").join(sums), sql.Identifier(table))
    row = conn.execute(query).fetchone()
    names = ("rows", "priced_rows", "cost_nanos", "reported_cost_nanos", "requests", "failed", *TOKEN_COLUMNS)
    return {name: int(value or 0) for name, value in zip(names, row, strict=True)}  # type: ignore[arg-type]


def rollup_totals(conn: psycopg.Connection) -> dict:
    sums = [sql.SQL("SUM({})").format(sql.Identifier(column)) for column in TOKEN_COLUMNS]
    query = sql.SQL(
        "SELECT SUM(fact_rows), SUM(cost_nanos), SUM(requests), {} FROM usage_dailyrollup"
    ).format(sql.SQL(", ").join(sums))
    row = conn.execute(query).fetchone()
    names = ("rows", "cost_nanos", "requests", *TOKEN_COLUMNS)
    return {name: int(value or 0) for name, value in zip(names, row, strict=True)}  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ProcessRun:
    seconds: float
    max_rss_mib: float
    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> dict:
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                return orjson.loads(line)
        return {}


def run_measured(command: list[str], env: dict) -> ProcessRun:
    """Run a command; wall time, and the peak RSS of exactly that process from wait4's rusage."""
    out_path, err_path = VAR / "child.stdout", VAR / "child.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)  # noqa: S603
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    return ProcessRun(seconds, usage.ru_maxrss / 1024, process.returncode, stdout, stderr)


# The apps whose code runs in `manage.py ingest` (others, e.g. dashboards, may change during a run).
INGEST_PATH_APPS = ("ingestion", "usage", "catalog", "org")


def source_digest() -> str:
    """A digest of the ingest path's source: rounds that ran different code are not comparable."""
    digest = hashlib.blake2b(digest_size=8)
    paths = [ROOT / "manage.py", *ROOT.glob("spendwatch/**/*.py")]
    for app in INGEST_PATH_APPS:
        paths.extend(ROOT.glob(f"apps/{app}/**/*.py"))
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ingest_command(path: Path) -> list[str]:
    return [*MANAGE, "ingest", "--format", FORMAT, "--source", SOURCE, str(path)]


def measure_copy(conn: psycopg.Connection, csv_path: Path, from_file: bool) -> float:
    columns = sql.SQL(", ").join(map(sql.Identifier, FACT_COLUMNS))
    started = time.perf_counter()
    if from_file:
        conn.execute(
            sql.SQL("COPY usage_usagefact_ref ({}) FROM {} WITH (FORMAT csv)").format(
                columns, sql.Literal(str(csv_path))
            )
        )
    else:
        with conn.cursor() as cursor, csv_path.open("rb") as source:
            statement = sql.SQL("COPY usage_usagefact_ref ({}) FROM STDIN WITH (FORMAT csv)").format(columns)
            with cursor.copy(statement) as copy:
                while block := source.read(1 << 20):
                    copy.write(block)
    return time.perf_counter() - started


def measure_parse(path: Path) -> float:
    loads, error = orjson.loads, orjson.JSONDecodeError
    started = time.perf_counter()
    with path.open("rb") as stream:
        for line in stream:
            try:
                loads(line)
            except error:
                pass
    return time.perf_counter() - started


def measure_adapter(path: Path) -> float:
    from apps.ingestion.adapters import get_adapter

    adapter = get_adapter(FORMAT)
    started = time.perf_counter()
    with path.open("rb") as stream:
        for _ in adapter.parse(stream, path.name):
            pass
    return time.perf_counter() - started


def django_startup(server: Server) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of loading Django and the ingest command, without doing any work."""
    run = run_measured([*MANAGE, "ingest", "--help"], child_env(server))
    return run.seconds, run.max_rss_mib


class Checks:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def expect(self, ok: bool, message: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failures.append(message)
            log(f"CHECK FAILED: {message}")


def _check_product(
    checks: Checks, label: str, run: ProcessRun, lines: int, rejects: int, reingest: bool
) -> dict:
    summary = run.summary()
    checks.expect(run.returncode == 0, f"{label}: exit code {run.returncode}; stderr: {run.stderr[-2000:]}")
    good = lines - rejects
    checks.expect(summary.get("rows") == lines, f"{label}: rows {summary.get('rows')} != {lines}")
    checks.expect(
        summary.get("rejected") == rejects, f"{label}: rejected {summary.get('rejected')} != {rejects}"
    )
    if reingest:
        checks.expect(summary.get("accepted") == 0, f"{label}: accepted {summary.get('accepted')} != 0")
        checks.expect(
            summary.get("duplicates") == good, f"{label}: duplicates {summary.get('duplicates')} != {good}"
        )
    else:
        accepted = lines - (summary.get("rejected") or 0)
        checks.expect(
            summary.get("accepted") == accepted, f"{label}: accepted {summary.get('accepted')} != {accepted}"
        )
    checks.expect(summary.get("replaced") == 0, f"{label}: replaced {summary.get('replaced')} != 0")
    return summary


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_rounds(args: argparse.Namespace, server: Server, files: DataFiles, caps: Capabilities) -> dict:
    lines, rejects = files.meta["lines"], files.meta["expected_rejects"]
    fact_rows = files.meta["fact_rows"]
    env = child_env(server)
    checks = Checks()
    rounds: list[dict] = []
    reference_totals: dict | None = None
    copy_modes = {"auto": [caps.copy_from_file], "file": [True], "stdin": [False], "both": [True, False]}
    modes = copy_modes[args.copy_mode]
    if True in modes and not caps.copy_from_file:
        sys.exit(
            f"bench: --copy-mode {args.copy_mode} needs server-side COPY, which is refused: {caps.copy_note}"
        )
    with connect(server.params) as conn:
        for number in range(1, args.rounds + 1):
            elapsed = time.perf_counter() - args.started
            if rounds and args.max_minutes and elapsed + rounds[-1]["round_s"] > args.max_minutes * 60:
                log(
                    f"stopping after {len(rounds)} round(s): another would pass --max-minutes {args.max_minutes}"
                )
                break
            log(f"round {number}/{args.rounds}")
            round_started = time.perf_counter()
            result: dict = {"round": number, "loadavg_1m_at_start": os.getloadavg()[0]}
            truncate_all(conn)
            order = ("product", "copy") if number % 2 else ("copy", "product")
            for step in order:
                if step == "product":
                    checkpoint(conn, caps)
                    result["source_digest"] = source_digest()
                    first = run_measured(ingest_command(files.jsonl), env)
                    summary = _check_product(checks, f"round {number} product", first, lines, rejects, False)
                    totals = fact_totals(conn)
                    checks.expect(
                        totals["rows"] == fact_rows,
                        f"round {number}: {totals['rows']} fact rows != {fact_rows}",
                    )
                    rollups = rollup_totals(conn)
                    for name, value in rollups.items():
                        checks.expect(
                            value == totals[name],
                            f"round {number}: rollup {name} {value} != facts {totals[name]}",
                        )
                    if reference_totals is None:
                        reference_totals = totals
                    checks.expect(totals == reference_totals, f"round {number}: totals differ from round 1's")
                    checkpoint(conn, caps)
                    again = run_measured(ingest_command(files.jsonl), env)
                    if source_digest() != result["source_digest"]:
                        result["source_digest"] += "+changed"
                    resummary = _check_product(
                        checks, f"round {number} re-ingest", again, lines, rejects, True
                    )
                    after = fact_totals(conn)
                    checks.expect(
                        after == totals, f"round {number}: re-ingest changed totals: {totals} -> {after}"
                    )
                    checks.expect(
                        rollup_totals(conn) == rollups, f"round {number}: re-ingest changed the rollups"
                    )
                    result.update(
                        product_s=first.seconds,
                        product_lines_s=lines / first.seconds,
                        product_rss_mib=first.max_rss_mib,
                        product_summary=summary,
                        reingest_s=again.seconds,
                        reingest_lines_s=lines / again.seconds,
                        reingest_rss_mib=again.max_rss_mib,
                        reingest_summary=resummary,
                        totals=totals,
                    )
                    log(
                        f"  product {first.seconds:.1f} s ({lines / first.seconds:,.0f} lines/s, "
                        f"{first.max_rss_mib:.0f} MiB); re-ingest {again.seconds:.1f} s "
                        f"({lines / again.seconds:,.0f} lines/s, {again.max_rss_mib:.0f} MiB)"
                    )
                else:
                    for from_file in modes:
                        conn.execute("TRUNCATE usage_usagefact_ref RESTART IDENTITY")
                        checkpoint(conn, caps)
                        seconds = measure_copy(conn, files.csv, from_file)
                        copied = fact_totals(conn, "usage_usagefact_ref")["rows"]
                        checks.expect(
                            copied == fact_rows, f"round {number}: R_copy stored {copied} != {fact_rows}"
                        )
                        key = "copy_file" if from_file else "copy_stdin"
                        result[f"{key}_s"] = seconds
                        result[f"{key}_rows_s"] = fact_rows / seconds
                        log(
                            f"  R_copy ({'file' if from_file else 'stdin'}) {seconds:.1f} s ({fact_rows / seconds:,.0f} rows/s)"
                        )
            result["copy_rows_s"] = result["copy_file_rows_s" if modes[0] else "copy_stdin_rows_s"]
            conn.execute("TRUNCATE usage_usagefact_ref")
            seconds = measure_parse(files.jsonl)
            result.update(parse_s=seconds, parse_lines_s=lines / seconds)
            if not args.no_adapter:
                seconds = measure_adapter(files.jsonl)
                result.update(adapter_s=seconds, adapter_lines_s=lines / seconds)
            log(
                f"  R_parse {result['parse_s']:.1f} s "
                f"({result['parse_lines_s']:,.0f} lines/s)"
                + (
                    f"; adapter {result['adapter_s']:.1f} s ({result['adapter_lines_s']:,.0f} lines/s)"
                    if "adapter_s" in result
                    else ""
                )
            )
            result["ratio_product_copy"] = result["product_lines_s"] / result["copy_rows_s"]
            result["ratio_reingest_copy"] = result["reingest_lines_s"] / result["copy_rows_s"]
            if "adapter_lines_s" in result:
                result["ratio_adapter_parse"] = result["adapter_lines_s"] / result["parse_lines_s"]
            result["round_s"] = time.perf_counter() - round_started
            rounds.append(result)
            if number == 1 and args.rounds > 1:
                log(f"  round took {result['round_s'] / 60:.1f} min; {args.rounds - 1} more to go")

        rss_2x = None
        if args.rss_2x:
            double = data_files(lines * 2, args.seed, args.shape)
            log(f"RSS check: ingesting the {lines * 2:,}-line file once")
            truncate_all(conn)
            checkpoint(conn, caps)
            run = run_measured(ingest_command(double.jsonl), env)
            _check_product(checks, "2x product", run, lines * 2, double.meta["expected_rejects"], False)
            rss_2x = {
                "source_digest": source_digest(),
                "lines": lines * 2,
                "seconds": run.seconds,
                "lines_s": lines * 2 / run.seconds,
                "rss_mib": run.max_rss_mib,
            }
            log(
                f"  2x product {run.seconds:.1f} s ({lines * 2 / run.seconds:,.0f} lines/s, {run.max_rss_mib:.0f} MiB)"
            )
    return {"rounds": rounds, "rss_2x": rss_2x, "checks": checks}


def summarise(rounds: list[dict], rss_2x: dict | None) -> dict:
    def med(key: str) -> float | None:
        values = [r[key] for r in rounds if key in r]
        return median(values) if values else None

    result = {
        key: med(key)
        for key in (
            "product_lines_s",
            "reingest_lines_s",
            "copy_rows_s",
            "copy_file_rows_s",
            "copy_stdin_rows_s",
            "parse_lines_s",
            "adapter_lines_s",
            "product_rss_mib",
            "reingest_rss_mib",
            "ratio_product_copy",
            "ratio_reingest_copy",
            "ratio_adapter_parse",
            "product_s",
            "reingest_s",
            "round_s",
        )
    }
    result["peak_rss_mib"] = max(max(r["product_rss_mib"], r["reingest_rss_mib"]) for r in rounds)
    if rss_2x:
        result["rss_2x_ratio"] = rss_2x["rss_mib"] / result["product_rss_mib"]
    return result


def goals(medians: dict) -> list[dict]:
    def goal(ident: str, what: str, value: float | None, target: float, higher: bool = True) -> dict:
        ok = None if value is None else (value >= target if higher else value <= target)
        return {
            "id": ident,
            "what": what,
            "value": value,
            "target": target,
            "higher_is_better": higher,
            "pass": ok,
        }

    out = [
        goal(
            "ING-1",
            "product / R_copy (median of per-round ratios)",
            medians["ratio_product_copy"],
            GOAL_ING1_RATIO,
        ),
        goal(
            "ING-1",
            "product lines/s (absolute, this machine class)",
            medians["product_lines_s"],
            GOAL_ING1_ABS,
        ),
        goal("ING-2", "re-ingest / R_copy", medians["ratio_reingest_copy"], GOAL_ING2_RATIO),
        goal(
            "ING-4", "adapter (parse + normalise) / R_parse", medians["ratio_adapter_parse"], GOAL_ING4_RATIO
        ),
        goal(
            "ING-5",
            "peak RSS MiB, ingest and re-ingest",
            medians["peak_rss_mib"],
            GOAL_ING5_MIB,
            higher=False,
        ),
    ]
    if "rss_2x_ratio" in medians:
        out.append(
            goal("ING-5", "peak RSS 2x file / 1x file", medians["rss_2x_ratio"], GOAL_ING5_2X, higher=False)
        )
    return out


def print_report(report: dict) -> None:
    meta, rounds, med = report["data"], report["rounds"], report["medians"]
    server = report["server"]
    print()
    print(
        f"SpendWatch ingestion benchmark: {meta['lines']:,} lines ({meta['bytes'] / 1e6:,.0f} MB, "
        f"{meta['bytes'] / meta['lines']:,.0f} B/line, shape {meta['shape']}), {len(rounds)} round(s)"
    )
    print(
        f"  PostgreSQL {server['server_version']} on 127.0.0.1: fsync={server['fsync']} "
        f"synchronous_commit={server['synchronous_commit']} full_page_writes={server['full_page_writes']} "
        f"shared_buffers={server['shared_buffers']} max_wal_size={server['max_wal_size']}"
    )
    print(f"  R_copy: {report['copy_mode']}")
    digests = [r.get("source_digest", "") for r in rounds]
    if len(set(digests)) > 1 or any("+" in digest for digest in digests):
        listed = ", ".join(f"round {r['round']} {r.get('source_digest')}" for r in rounds)
        print(
            f"  WARNING: the ingest path's source ({', '.join(INGEST_PATH_APPS)}) changed during the run: {listed}"
        )
    load = report["machine"]["loadavg_before"][0]
    if load > 0.5:
        print(
            f"  WARNING: load average {load:.2f} before the run: other work shared the CPUs (noisy figures)"
        )
    print(
        f"  CHECKPOINT before each timed step: {'yes' if report['checkpoint_between_steps'] else 'no (not permitted)'}"
    )
    print(
        f"  data: {meta['fact_rows']:,} valid rows, {meta['expected_rejects']} invalid lines, "
        f"{meta['models']} models (1 unknown), {meta['teams']} teams, {meta['people']:,} people, "
        f"{meta['identity_combinations']:,} identity combinations, {meta['span_days']} days; "
        f"batch {report['product']['batch_rows']:,} rows"
    )
    print(
        f"  Django start-up (ingest --help): {report['django_startup_s']:.2f} s (inside the product's time), "
        f"{report['django_startup_rss_mib']:.0f} MiB RSS"
    )
    if len(rounds) < report["rounds_requested"]:
        print(f"  INCOMPLETE: {len(rounds)} of {report['rounds_requested']} rounds (--max-minutes)")
    print()
    columns = [f"round {r['round']}" for r in rounds]
    print(f"  {'':32}" + "".join(f"{c:>12}" for c in columns) + f"{'median':>12}")
    rows = [
        ("product lines/s", "product_lines_s", "{:,.0f}"),
        ("  seconds", "product_s", "{:.1f}"),
        ("re-ingest lines/s", "reingest_lines_s", "{:,.0f}"),
        ("  seconds", "reingest_s", "{:.1f}"),
        ("R_copy rows/s (reference)", "copy_rows_s", "{:,.0f}"),
        ("R_copy from file rows/s", "copy_file_rows_s", "{:,.0f}"),
        ("R_copy from STDIN rows/s", "copy_stdin_rows_s", "{:,.0f}"),
        ("R_parse lines/s", "parse_lines_s", "{:,.0f}"),
        ("adapter lines/s", "adapter_lines_s", "{:,.0f}"),
        ("product / R_copy", "ratio_product_copy", "{:.3f}"),
        ("re-ingest / R_copy", "ratio_reingest_copy", "{:.3f}"),
        ("adapter / R_parse", "ratio_adapter_parse", "{:.3f}"),
        ("product peak RSS MiB", "product_rss_mib", "{:.1f}"),
        ("re-ingest peak RSS MiB", "reingest_rss_mib", "{:.1f}"),
        ("round seconds", "round_s", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        if not any(key in r for r in rounds):
            continue
        cells = "".join(f"{fmt.format(r[key]) if key in r else '-':>12}" for r in rounds)
        value = med.get(key)
        print(f"  {label:32}{cells}{fmt.format(value) if value is not None else '-':>12}")
    if report.get("rss_2x"):
        two = report["rss_2x"]
        print(
            f"  2x file ({two['lines']:,} lines): {two['lines_s']:,.0f} lines/s, peak RSS {two['rss_mib']:.1f} MiB "
            f"-> 2x/1x {med['rss_2x_ratio']:.3f}"
        )
    print()
    print("  Goals (PERFORMANCE.md 3.1)")
    for g in report["goals"]:
        sign = ">=" if g["higher_is_better"] else "<="
        value = (
            "-" if g["value"] is None else (f"{g['value']:,.3f}" if g["value"] < 10 else f"{g['value']:,.0f}")
        )
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[g["pass"]]
        print(f"    {g['id']:6} {g['what']:52} {value:>10}  {sign} {g['target']:<8,}  {verdict}")
    checks = report["checks"]
    print()
    print(f"  Correctness checks: {checks['passed']} passed, {len(checks['failures'])} failed")
    for failure in checks["failures"]:
        print(f"    FAILED: {failure}")
    totals = rounds[0].get("totals") if rounds else None
    if totals:
        print(
            f"  Totals (every round, before and after re-ingest): {totals['rows']:,} rows, "
            f"{totals['priced_rows']:,} priced, cost ${totals['cost_nanos'] / 1e9:,.2f}, "
            f"reported ${totals['reported_cost_nanos'] / 1e9:,.2f}, "
            + ", ".join(f"{name.removesuffix('_tokens')} {totals[name]:,}" for name in TOKEN_COLUMNS)
        )
    print(f"  Elapsed {report['elapsed_s'] / 60:.1f} min; report written to {report['report_path']}")


# --------------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------------

# (label, file name ending, function name): where the pipeline's time goes, by cumulative time.
STAGES = (
    ("whole ingest command (handle)", "ingest.py", "handle"),
    ("  adapter: LiteLLMSpendLogs.parse (generator)", "litellm_spend_logs.py", "parse"),
    ("    orjson.loads", "~", "orjson.loads"),
    ("    _row (normalise one record)", "litellm_spend_logs.py", "_row"),
    ("    base.timestamp", "adapters/base.py", "timestamp"),
    ("    base.usd_to_nanos", "adapters/base.py", "usd_to_nanos"),
    ("  Pipeline._commit_batch (one transaction per batch)", "pipeline.py", "_commit_batch"),
    ("    Pipeline._fact (per row)", "pipeline.py", "_fact"),
    ("      Resolver.resolve (attribution)", "attribution.py", "resolve"),
    ("        Resolver._resolve_new (RawIdentity get_or_create)", "attribution.py", "_resolve_new"),
    ("      Pricer.price", "pricing.py", "price"),
    ("        genai-prices calc_price (tiers, fallback)", "genai_prices/types.py", "calc_price"),
    ("      provider_slug", "normalise.py", "provider_slug"),
    ("      datetime.astimezone (org-local day)", "~", "astimezone"),
    ("    Resolver.prepare (a batch's new identities)", "attribution.py", "prepare"),
    ("    store_facts", "usage/services.py", "store_facts"),
    ("      _stage_postgresql (COPY to temp table)", "usage/services.py", "_stage_postgresql"),
    ("        psycopg Copy.write_row", "psycopg/_copy_base.py", "write_row"),
    ("      _replace_changed_buckets (UPDATE)", "usage/services.py", "_replace_changed_buckets"),
    ("      _insert_new (INSERT ... ON CONFLICT)", "usage/services.py", "_insert_new"),
    (
        "    Django bulk_create (RawIdentity in prepare, RejectedRow)",
        "django/db/models/query.py",
        "bulk_create",
    ),
    ("    commit (WAL flush + deferred FK checks)", "django/db/backends/base/base.py", "commit"),
    ("  refresh_rollups (Pipeline.finish)", "usage/services.py", "refresh_rollups"),
    ("psycopg wait (all time spent waiting for the server)", "psycopg/connection.py", "wait"),
)


def profile_stages(path: Path) -> tuple[float, list[tuple[str, float, int]]]:
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    out = []
    for label, file_suffix, function in STAGES:
        cumulative, calls = 0.0, 0
        for (file_name, _line, name), (_cc, nc, _tt, ct, _callers) in raw.items():
            # Several matches (overloads calling each other) would count twice: take the largest.
            found = function in name if file_suffix == "~" else name == function  # builtins: "{orjson.loads}"
            if found and file_name.endswith(file_suffix) and ct > cumulative:
                cumulative, calls = ct, nc
        out.append((label, cumulative, calls))
    return total, out


def run_profile(args: argparse.Namespace, server: Server) -> int:
    lines = args.profile
    files = data_files(lines, args.seed, args.shape)
    world = World.build(args.seed)
    recreate_database(server)
    migrate(server)
    setup_organisation(server, world)
    with connect(server.params) as conn:
        create_reference_table(conn)  # truncate_all() empties it too
        caps = probe_server(conn)
    env = child_env(server)
    report_lines: list[str] = []

    def say(text: str = "") -> None:
        print(text)
        report_lines.append(text)

    say(
        f"Profile of `manage.py ingest` on {lines:,} lines ({files.meta['bytes'] / 1e6:,.0f} MB, shape {args.shape})"
    )
    say(
        f"PostgreSQL {caps.settings['server_version']}, fsync={caps.settings['fsync']}, cProfile adds overhead to Python-heavy code"
    )
    for phase in ("ingest", "reingest"):
        out = VAR / f"profile-{lines}-{args.shape}-{phase}.pstats"
        plain = None
        if args.profile_baseline:
            # The same work without cProfile first: a first ingest is undone again, a re-ingest changes nothing.
            plain = run_measured(ingest_command(files.jsonl), env)
            if phase == "ingest":
                with connect(server.params) as conn:
                    truncate_all(conn)
        run = run_measured(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(out),
                *MANAGE[1:],
                "ingest",
                "--format",
                FORMAT,
                "--source",
                SOURCE,
                str(files.jsonl),
            ],
            env,
        )
        if run.returncode:
            say(f"{phase} failed: {run.stderr[-3000:]}")
            return 1
        total, stages = profile_stages(out)
        say()
        say(
            f"== {phase}: {run.seconds:.1f} s wall under cProfile ({lines / run.seconds:,.0f} lines/s); "
            f"summary {run.summary()}"
        )
        if plain is not None:
            say(f"   without cProfile: {plain.seconds:.1f} s ({lines / plain.seconds:,.0f} lines/s)")
        say(f"   {'stage (cumulative time)':60}{'seconds':>10}{'% of total':>12}{'calls':>12}")
        for label, cumulative, calls in stages:
            if calls:
                say(f"   {label:60}{cumulative:>10.2f}{100 * cumulative / total:>11.1f}%{calls:>12,}")
            else:
                say(f"   {label:60}{'-':>10}{'':>12}{'(not called)':>12}")
        say(f"   {'profiled total':60}{total:>10.2f}")
        for sort in ("cumulative", "tottime"):
            listing = VAR / f"profile-{lines}-{args.shape}-{phase}-{sort}.txt"
            with listing.open("w") as stream:
                pstats.Stats(str(out), stream=stream).sort_stats(sort).print_stats(45)
        say(f"   top functions: {VAR}/profile-{lines}-{args.shape}-{phase}-{{cumulative,tottime}}.txt")
    (VAR / f"profile-{lines}-{args.shape}.txt").write_text("\n".join(report_lines) + "\n")
    if not args.keep_db:
        drop_database(server)
    return 0


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def git_state() -> dict:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)  # noqa: S603, S607
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(git("status", "--porcelain").splitlines())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lines", type=int, default=None, help=f"lines in the spend log (default {DEFAULT_LINES:,})"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: {QUICK_LINES:,} lines, 1 round")
    parser.add_argument(
        "--rss-2x", action="store_true", help="also ingest a 2x file once: ING-5's flatness ratio"
    )
    parser.add_argument(
        "--shape",
        choices=("full", "lean"),
        default="full",
        help="full: every field LiteLLM writes, like the sample (~1.8 kB/line); "
        "lean: only the fields the adapter reads (~0.4 kB/line, near PERFORMANCE.md's 331 B/line)",
    )
    parser.add_argument(
        "--copy-mode",
        choices=("auto", "file", "stdin", "both"),
        default="auto",
        help="R_copy: server-side COPY FROM file when permitted (auto), or FROM STDIN; both = measure both",
    )
    parser.add_argument("--no-adapter", action="store_true", help="skip the in-process adapter measurement")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="start no further round once another would end past this many minutes (default: no limit)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true", help=f"leave the {BENCH_DB} database afterwards")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a goal is missed, not only a check"
    )
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=PROFILE_LINES,
        default=None,
        metavar="LINES",
        help=f"instead of the rounds: cProfile one ingest and one re-ingest (default {PROFILE_LINES:,} lines)",
    )
    parser.add_argument(
        "--profile-baseline", action="store_true", help="with --profile: also time one plain run"
    )
    args = parser.parse_args(argv)
    args.lines = args.lines or (QUICK_LINES if args.quick else DEFAULT_LINES)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.lines < 1_000 or args.rounds < 1:
        parser.error("--lines must be at least 1,000 and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    finally:
        for leftover in ("child.stdout", "child.stderr"):
            with contextlib.suppress(FileNotFoundError):
                (VAR / leftover).unlink()


def run(args: argparse.Namespace) -> int:
    started = args.started = time.perf_counter()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"WARNING: load average {load_before[0]:.2f} before starting: other work shares these CPUs")
    server = server_from_env()
    VAR.mkdir(parents=True, exist_ok=True)
    if args.profile:
        return run_profile(args, server)

    files = data_files(args.lines, args.seed, args.shape)
    if args.rss_2x:
        data_files(args.lines * 2, args.seed, args.shape)
    log(f"setting up {BENCH_DB} on 127.0.0.1:{server.params['port']} (drop, create, migrate, organisation)")
    recreate_database(server)
    migrate(server)
    product = setup_organisation(server, World.build(args.seed))
    with connect(server.params) as conn:
        create_reference_table(conn)
        caps = probe_server(conn)
    if caps.settings["fsync"] != "on" or caps.settings["synchronous_commit"] != "on":
        log(
            "WARNING: the server is not crash-safe (fsync/synchronous_commit off): figures are not comparable"
        )
    startup_s, startup_rss = django_startup(server)
    measured = run_rounds(args, server, files, caps)
    rounds, checks = measured["rounds"], measured["checks"]
    medians = summarise(rounds, measured["rss_2x"])
    goal_list = goals(medians)
    report_path = VAR / "ingest.json"
    report = {
        "benchmark": "ingest",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
        },
        "args": {k: v for k, v in vars(args).items() if k != "profile"},
        "data": {**files.meta, "path": str(files.jsonl), "csv": str(files.csv)},
        "server": caps.settings,
        "copy_mode": caps.copy_note if args.copy_mode == "auto" else f"--copy-mode {args.copy_mode}",
        "copy_from_file_permitted": caps.copy_from_file,
        "checkpoint_between_steps": caps.checkpoint,
        "product": {**product, "command": " ".join(ingest_command(files.jsonl)[1:])},
        "django_startup_s": startup_s,
        "django_startup_rss_mib": startup_rss,
        "rounds_requested": args.rounds,
        "rounds": rounds,
        "rss_2x": measured["rss_2x"],
        "medians": medians,
        "goals": goal_list,
        "checks": {"passed": checks.passed, "failures": checks.failures},
        "elapsed_s": time.perf_counter() - started,
        "report_path": str(report_path.relative_to(ROOT)),
    }
    report_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print_report(report)
    if not args.keep_db:
        drop_database(server)
    if checks.failures:
        return 1
    if args.strict and any(g["pass"] is False for g in goal_list):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
