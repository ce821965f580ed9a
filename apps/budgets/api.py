"""GET /api/v1/budgets/check/: may this person / team / task spend now? For gateways, in their request path.

Lean on purpose (PERFORMANCE: p99 <= 10 ms at 500 req/s): the gateway key and the organisation's
directory of people, teams and tasks are cached in the process for SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS;
the budget states come from the table each ingestion refreshes, reloaded when its version moves (polled
at most every SPENDWATCH_BUDGET_CHECK_POLL_MS with one indexed lookup). Nothing is computed here.
"""

from __future__ import annotations

import hashlib
import logging
import time
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import (
    MachineKeyAuthentication,
    MachineKeyScheme,
    MachinePrincipal,
    scope_required,
)
from apps.accounts.models import KeyScope
from apps.budgets.models import Unit
from apps.budgets.selectors import CheckAnswer, budget_check

logger = logging.getLogger(__name__)

MAX_PARAMETER = 320  # longer than any email, slug or tag we store

_keys: dict[str, tuple[float, object]] = {}


class LedgerUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "the budget ledger is unavailable"


def _degraded_body(reason: str) -> dict:
    return {
        "allowed": settings.SPENDWATCH_BUDGET_CHECK_FAIL_OPEN,
        "scope": None,
        "limit_usd": None,
        "spent_usd": None,
        "remaining_usd": None,
        "degraded": True,
        "detail": reason,
    }


class CachedMachineKeyAuthentication(MachineKeyAuthentication):
    """Machine keys, remembered per process by the SHA-256 of the key text for a short while.

    A revoked key therefore keeps working here for at most SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS.
    Unknown keys are not remembered: each is looked up (and refused) again.
    """

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        text = header[7:].strip() if header.startswith("Bearer ") else request.headers.get("X-Api-Key", "")
        if not text.startswith("sw_"):
            return None
        digest = hashlib.sha256(text.encode()).hexdigest()
        now = time.monotonic()
        cached = _keys.get(digest)
        if cached is not None and cached[0] > now:
            return MachinePrincipal(cached[1]), cached[1]
        try:
            principal, key = super().authenticate(request)
        except DatabaseError:
            logger.warning("budget check: key lookup failed, the database is unavailable")
            raise LedgerUnavailable("the key could not be verified: the database is unavailable") from None
        _keys[digest] = (now + settings.SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS, key)
        return principal, key


class CachedMachineKeyScheme(MachineKeyScheme):
    """The same bearer machine key in the OpenAPI schema."""

    target_class = "apps.budgets.api.CachedMachineKeyAuthentication"
    name = "gatewayKey"  # one component per authenticator class

    def get_security_definition(self, auto_schema) -> dict:
        return {
            **super().get_security_definition(auto_schema),
            "description": "A machine key with the gateway scope",
        }


def forget_cached_keys() -> None:
    _keys.clear()


def _usd(nanos: int | None) -> str | None:
    return None if nanos is None else f"{Decimal(nanos).scaleb(-9):.9f}"


def answer_body(answer: CheckAnswer) -> dict:
    row = answer.binding
    body: dict = {
        "allowed": answer.allowed,
        "scope": row.scope if row else None,
        "limit_usd": None,
        "spent_usd": None,
        "remaining_usd": None,
    }
    if row is not None:
        body["unit"] = row.unit
        body["period_start"] = row.period_start.isoformat() if row.period_start else None
        body["period_end"] = row.period_end.isoformat() if row.period_end else None
        remaining = row.limit_amount - row.spent
        if row.unit == Unit.USD:
            body.update(
                limit_usd=_usd(row.limit_amount), spent_usd=_usd(row.spent), remaining_usd=_usd(remaining)
            )
        else:
            body.update(limit_tokens=row.limit_amount, spent_tokens=row.spent, remaining_tokens=remaining)
    if answer.unknown:
        body["unknown"] = list(answer.unknown)
    return body


CheckResponse = inline_serializer(
    "BudgetCheck",
    {
        "allowed": serializers.BooleanField(),
        "scope": serializers.CharField(allow_null=True, help_text='the binding limit, e.g. "team:platform"'),
        "limit_usd": serializers.CharField(allow_null=True, help_text="exact decimal, 9 places"),
        "spent_usd": serializers.CharField(allow_null=True),
        "remaining_usd": serializers.CharField(allow_null=True, help_text="negative when over the limit"),
        "unit": serializers.ChoiceField(choices=Unit.choices, required=False),
        "period_start": serializers.DateField(required=False, allow_null=True),
        "period_end": serializers.DateField(required=False, allow_null=True),
        "limit_tokens": serializers.IntegerField(required=False),
        "spent_tokens": serializers.IntegerField(required=False),
        "remaining_tokens": serializers.IntegerField(required=False),
        "unknown": serializers.ListField(child=serializers.CharField(), required=False),
        "degraded": serializers.BooleanField(required=False),
        "detail": serializers.CharField(required=False),
    },
)


class BudgetCheckView(APIView):
    authentication_classes = [CachedMachineKeyAuthentication]
    permission_classes = [scope_required(KeyScope.GATEWAY)]
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc):
        if isinstance(exc, LedgerUnavailable):
            return Response(_degraded_body(str(exc.detail)), status=exc.status_code)
        return super().handle_exception(exc)

    @extend_schema(
        operation_id="budgets_check",
        parameters=[
            OpenApiParameter(
                "person", str, description="gateway user: an identity value or a person's email"
            ),
            OpenApiParameter("team", str, description="gateway team: an identity value or a team slug"),
            OpenApiParameter("task", str, description="tag: an identity value or a task key"),
            OpenApiParameter(
                "model", str, description="accepted for gateways' convenience; limits are not per model"
            ),
        ],
        responses={
            200: CheckResponse,
            401: OpenApiResponse(description="no key, or an invalid or revoked one"),
            403: OpenApiResponse(description="the key lacks the gateway scope"),
            503: OpenApiResponse(CheckResponse, description="the key could not be verified (database down)"),
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        values = {name: params.get(name, "")[:MAX_PARAMETER].strip() for name in ("person", "team", "task")}
        try:
            answer = budget_check(
                request.user.key.organisation_id,
                **values,
                max_age=settings.SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS,
                poll_seconds=settings.SPENDWATCH_BUDGET_CHECK_POLL_MS / 1000,
            )
        except DatabaseError:
            logger.warning("budget check answered without the ledger (fail open: %s)",
                           settings.SPENDWATCH_BUDGET_CHECK_FAIL_OPEN)  # fmt: skip
            return Response(_degraded_body("the budget ledger is unavailable"))
        return Response(answer_body(answer))
