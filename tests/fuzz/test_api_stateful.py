"""Random sequences of create source -> ingest -> set limit -> check -> delete over the real API (TESTPLAN L4).

After every step: the ledger holds exactly what was ingested once (a body sent again adds nothing), and
the budget check API answers with the ledger's own total for the limit's scope, or with no binding limit
once the limit is deleted. Ingestion and the check go through HTTP with machine keys (the test client);
limits are set and removed through the budget services, as the limits page does.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os

import orjson
import pytest
from django.db.models import Sum
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from apps.accounts.models import KeyScope, Role
from apps.accounts.scoping import Viewer
from apps.accounts.services import machine_key_create
from apps.budgets import services as budget_services
from apps.budgets.api import forget_cached_keys
from apps.budgets.models import Period, ScopeKind, Unit
from apps.budgets.selectors import TOKEN_SUM
from apps.ingestion.services import source_get_or_create
from apps.org.models import Organisation, Person, Team
from apps.usage.models import UsageFact
from tests.conftest import litellm_record

STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "12"))
RUNS = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "12"))
_organisations = itertools.count(1)


class IngestLimitCheck(RuleBasedStateMachine):
    sources = Bundle("sources")

    @initialize()
    def organisation(self) -> None:
        number = next(_organisations)
        self.org = Organisation.objects.create(name=f"Org {number}", slug=f"org-{number}", time_zone="UTC")
        self.team = Team.objects.create(organisation=self.org, name="Platform", slug="platform")
        self.email = f"alice@org{number}.example"
        Person.objects.create(organisation=self.org, name="Alice", email=self.email, team=self.team)
        _, ingest_key = machine_key_create(organisation=self.org, name="ingest", scopes=[KeyScope.INGEST])
        _, gateway_key = machine_key_create(organisation=self.org, name="gateway", scopes=[KeyScope.GATEWAY])
        self.ingest_auth = {"HTTP_AUTHORIZATION": f"Bearer {ingest_key}"}
        self.gateway_auth = {"HTTP_AUTHORIZATION": f"Bearer {gateway_key}"}
        self.actor = budget_services.Actor(viewer=Viewer(self.org.pk, Role.CIO, None, None))
        self.client = Client()
        self.request_ids = itertools.count(1)
        self.bodies: list[tuple[str, bytes]] = []
        self.expected_tokens = 0  # prompt + completion of every distinct request sent
        self.expected_rows = 0
        self.limit = None

    @rule(target=sources, name=st.sampled_from(["gateway-a", "gateway-b"]))
    def create_source(self, name: str) -> str:
        source_get_or_create(organisation=self.org, name=name, format="litellm_spend_logs")
        return name

    @rule(
        source=sources,
        requests=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**6)), min_size=1, max_size=4),
    )
    def ingest(self, source: str, requests: list[tuple[int, int]]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        records = []
        for prompt, completion in requests:
            record = litellm_record(
                f"req-{next(self.request_ids)}",
                user=self.email,
                startTime=now,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            record["metadata"]["usage_object"]["prompt_tokens_details"]["cached_tokens"] = prompt // 5
            records.append(record)
            self.expected_tokens += prompt + completion
        self.expected_rows += len(records)
        body = b"\n".join(orjson.dumps(record) for record in records) + b"\n"
        self.bodies.append((source, body))
        answer = self._post(source, body)
        assert answer["accepted"] == len(records) and answer["rejected"] == 0, answer

    @precondition(lambda self: self.bodies)
    @rule(data=st.data())
    def ingest_again(self, data) -> None:
        source, body = data.draw(st.sampled_from(self.bodies))
        answer = self._post(source, body)
        assert answer["accepted"] == 0 and answer["duplicates"] == answer["rows"], answer

    @precondition(lambda self: self.limit is None)
    @rule(amount=st.integers(1, 10**12))
    def set_limit(self, amount: int) -> None:
        spec = budget_services.LimitSpec(
            scope_kind=ScopeKind.TEAM, team=self.team, unit=Unit.TOKENS, amount=amount, period=Period.MONTH
        )
        self.limit = budget_services.limit_create(actor=self.actor, spec=spec)

    @precondition(lambda self: self.limit is not None)
    @rule()
    def delete_limit(self) -> None:
        budget_services.limit_deactivate(actor=self.actor, limit_id=self.limit.pk)
        self.limit = None

    @invariant()
    def ledger_holds_each_request_once(self) -> None:
        facts = UsageFact.objects.filter(source__organisation=self.org)
        assert facts.count() == self.expected_rows
        assert (facts.aggregate(tokens=Sum(TOKEN_SUM))["tokens"] or 0) == self.expected_tokens

    @invariant()
    def check_api_answers_with_the_ledger(self) -> None:
        response = self.client.get("/api/v1/budgets/check/", {"person": self.email}, **self.gateway_auth)
        assert response.status_code == 200, response.content
        answer = response.json()
        if self.limit is None:
            assert answer["allowed"] is True and answer["scope"] is None, answer
            return
        assert answer["scope"] == "team:platform", answer
        assert answer["spent_tokens"] == self.expected_tokens, answer
        assert answer["remaining_tokens"] == self.limit.amount - self.expected_tokens, answer
        assert answer["allowed"] is (self.expected_tokens < self.limit.amount), answer

    def _post(self, source: str, body: bytes) -> dict:
        response = self.client.post(
            f"/api/v1/ingest/litellm_spend_logs/?source={source}",
            body,
            content_type="application/x-ndjson",
            **self.ingest_auth,
        )
        assert response.status_code == 200, response.content
        return response.json()


@pytest.mark.django_db(transaction=True)  # the budget states refresh when ingestion and limit changes commit
def test_ingest_limit_check_delete_keeps_the_totals(settings_override):
    IngestLimitCheck.TestCase.settings = settings(
        max_examples=RUNS,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        derandomize=os.environ.get("FUZZ_RANDOM", "") != "1",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    IngestLimitCheck.TestCase().runTest()


@pytest.fixture
def settings_override(settings):
    # The check API's per-process caches would answer from before the step otherwise.
    settings.SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS = 0
    settings.SPENDWATCH_BUDGET_CHECK_POLL_MS = 0
    forget_cached_keys()
    yield settings
    forget_cached_keys()
