"""GET /api/v1/spend/: spend totals per group, the numbers the dashboards and `manage.py spend` show.

Session login (scoped by the viewer: a manager sees their teams, a member their own usage) or a machine
key with the `read` scope (the key's whole organisation). Every total comes with its honest buckets.
"""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import MachineKeyAuthentication, MachinePrincipal
from apps.accounts.models import KeyScope, Role
from apps.accounts.scoping import Viewer, viewer_for_user
from apps.usage.money import usd_text
from apps.usage.selectors import GROUPS, spend, total_buckets

MAX_DAYS = 731


class CanReadSpend(permissions.BasePermission):
    """A logged-in member of an organisation, or a machine key holding the read scope."""

    message = "a session login or a machine key with the read scope is needed"

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, MachinePrincipal):
            return KeyScope.READ in request.user.key.scopes
        return bool(request.user and request.user.is_authenticated)


def _viewer(request: Request) -> Viewer:
    if isinstance(request.user, MachinePrincipal):
        # A reporting key reads its organisation as FinOps does; it can never act.
        return Viewer(request.user.organisation_id, Role.FINOPS, None, None)
    return viewer_for_user(request.user)


class SpendQuery(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=GROUPS)
    start = serializers.DateField(help_text="first organisation-local day, inclusive")
    end = serializers.DateField(help_text="last organisation-local day, inclusive")

    def validate(self, data: dict) -> dict:
        if data["end"] < data["start"]:
            raise ValidationError({"end": "the end is before the start"})
        if (data["end"] - data["start"]).days >= MAX_DAYS:
            raise ValidationError({"end": f"at most {MAX_DAYS} days at a time"})
        return data


_BUCKETS = {
    "cost_usd": serializers.CharField(
        help_text="net cost: what every total counts (billed + computed + estimated)"
    ),
    "list_cost_usd": serializers.CharField(
        help_text="the same usage at list prices, before the organisation's terms"
    ),
    "billed_usd": serializers.CharField(help_text="from invoice lines"),
    "computed_usd": serializers.CharField(help_text="tokens priced by SpendWatch"),
    "estimated_usd": serializers.CharField(
        help_text="a source's own figure, not an invoice, where no price priced it"
    ),
    "unpriced_rows": serializers.IntegerField(help_text="rows no price knows: counted as nothing"),
    "unpriced_reported_usd": serializers.CharField(
        help_text="what sources reported for unpriced rows: not counted"
    ),
    "attributed_usd": serializers.CharField(help_text="with a team"),
    "unattributed_usd": serializers.CharField(help_text="without a team"),
}
SpendGroupsSchema = inline_serializer(
    "SpendGroup",
    many=True,
    fields={
        "key": serializers.CharField(
            allow_null=True, help_text="slug, email, task key, provider or provider/model; null = none"
        ),
        "label": serializers.CharField(),
        "requests": serializers.IntegerField(allow_null=True),
        "input_uncached_tokens": serializers.IntegerField(),
        "cache_read_tokens": serializers.IntegerField(),
        "cache_write_tokens": serializers.IntegerField(),
        "output_tokens": serializers.IntegerField(),
        "reasoning_tokens": serializers.IntegerField(),
        **_BUCKETS,
    },
)
SpendResponse = inline_serializer(
    "SpendResponse",
    {
        "group_by": serializers.ChoiceField(choices=GROUPS),
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "currency": serializers.CharField(),
        "totals": inline_serializer("SpendTotals", dict(_BUCKETS)),
        "groups": SpendGroupsSchema,
    },
)


class SpendView(APIView):
    authentication_classes = [SessionAuthentication, MachineKeyAuthentication]
    permission_classes = [CanReadSpend]

    @extend_schema(
        operation_id="spend_list",
        parameters=[
            OpenApiParameter("group_by", str, required=True, enum=list(GROUPS)),
            OpenApiParameter("start", dt.date, required=True, description="first organisation-local day"),
            OpenApiParameter(
                "end", dt.date, required=True, description="last organisation-local day, inclusive"
            ),
        ],
        responses={
            200: SpendResponse,
            400: OpenApiResponse(description="a parameter is missing or invalid"),
            403: OpenApiResponse(description="not logged in, or the key lacks the read scope"),
            404: OpenApiResponse(description="the login belongs to no organisation"),
        },
    )
    def get(self, request: Request) -> Response:
        query = SpendQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        groups = spend(_viewer(request), group_by=data["group_by"], start=data["start"], end=data["end"])
        totals = total_buckets(groups)
        return Response(
            {
                "group_by": data["group_by"],
                "start": data["start"].isoformat(),
                "end": data["end"].isoformat(),
                "currency": "USD",
                "totals": {
                    "cost_usd": usd_text(totals.cost_nanos),
                    "unpriced_rows": totals.unpriced_rows,
                    **totals.as_dict(),
                },
                "groups": [{**group.as_dict(), "label": group.label} for group in groups],
            }
        )
