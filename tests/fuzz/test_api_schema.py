"""Schemathesis against the running app, once per role's credentials: 0 failures (TESTPLAN L1).

The real CLI (`st run`) tests the app served by pytest-django's live server on 127.0.0.1, with every
check (no 5xx, responses match the schema's status codes, content types, headers and bodies, invalid
input rejected, valid input accepted, authentication not ignored, deleted resources gone) and the
examples, coverage, fuzzing and stateful phases. Roles: the CIO, a manager and a member by session
cookie; machine keys with the ingest, gateway and read scopes; and no credentials at all.

SCHEMATHESIS_EXAMPLES (default 25 per operation) and SCHEMATHESIS_SEED set the size and the seed;
`make fuzz` runs 500 per operation. The seed is printed with every run so a failure can be replayed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from apps.accounts.models import KeyScope, Role
from apps.accounts.services import machine_key_create
from apps.ingestion.models import BufferedRequest, DataSource
from apps.metrics.models import Metric
from tests.conftest import _login

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20260803"))
CHECKS = "all"
PHASES = "examples,coverage,fuzzing,stateful"
ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "schemathesis"

ROLES = ["cio", "manager", "member", "ingest_key", "gateway_key", "read_key", "anonymous"]


def credentials(role: str, acme, teams, people) -> str:
    """The role's credentials as schemathesis auth config, per security scheme of the schema.

    Given per scheme (not as a global header), so that `ignored_auth` knows them for real credentials
    and probes each operation without them and with invalid ones.
    """
    if role == "anonymous":
        return ""
    if role.endswith("_key"):
        scope = {"ingest_key": KeyScope.INGEST, "gateway_key": KeyScope.GATEWAY, "read_key": KeyScope.READ}
        _, text = machine_key_create(organisation=acme, name=role, scopes=[scope[role]])
        # The budget check's authenticator has a scheme of its own: the same bearer key.
        return "".join(
            f'\n[auth.openapi.{scheme}]\nbearer = "{text}"\n' for scheme in ("machineKey", "gatewayKey")
        )
    if role == "cio":
        client = _login(Client(), "cio@acme.example", acme, Role.CIO)
    elif role == "manager":
        client = _login(Client(), "lead@acme.example", acme, Role.MANAGER, manages=[teams["engineering"]])
    else:
        client = _login(Client(), "alice@acme.example", acme, Role.MEMBER, person=people["alice"])
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return f'\n[auth.openapi.cookieAuth]\napi_key = "{session}"\n'


def write_schema(directory: Path) -> Path:
    """The schema /api/schema/ serves (it is for logged-in people: a key or no login cannot fetch it)."""
    path = directory / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(path))
    return path


def run_schemathesis(base_url: str, auth: str, examples: int, seed: int, tmp_path: Path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.read_text() + auth)
    command = [
        str(ST),
        "--config-file",
        str(config),
        "run",
        str(write_schema(tmp_path)),
        "--url",
        base_url,
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_no_failure(role, live_server, transactional_db, acme, teams, people, tmp_path):
    Metric.objects.create(organisation=acme, key="tickets-closed", name="Tickets closed", unit="tickets")
    # A body pushed with `Prefer: respond-async`, so that the receipt operation has one to find.
    source = DataSource.objects.create(organisation=acme, name="push", format="litellm_spend_logs")
    receipt = BufferedRequest.objects.create(
        organisation=acme, source=source, format=source.format, suffix=".jsonl", body=b"{}", body_sha256="-"
    )
    auth = credentials(role, acme, teams, people) + (
        f'\n[[operations]]\ninclude-operation-id = "ingest_receipt"\n'
        f'parameters = {{ "path.receipt_id" = {receipt.pk} }}\n'
    )
    result = run_schemathesis(live_server.url, auth, EXAMPLES, SEED, tmp_path)
    report = (
        f"st run --seed {SEED} -n {EXAMPLES} as {role}:\n{result.stdout[-20_000:]}\n{result.stderr[-5_000:]}"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{role}.txt").write_text(report)
    assert result.returncode == 0, report
