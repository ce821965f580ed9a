"""POST /api/v1/metrics/{key}/values/: push outcome values with a machine key (scope "ingest").

Idempotent per metric, team (or task) and period: a period sent again replaces its value, the same
value sent again changes nothing. Bad items are answered per item (position, field, reason); the good
items of the same request are stored.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import MachineKeyAuthentication, scope_required
from apps.accounts.models import KeyScope
from apps.accounts.scoping import organisation_viewer
from apps.metrics import services
from apps.metrics.models import Metric


class DecimalJSONParser(JSONParser):
    """JSON with numbers read as exact decimals (a float would turn 12345678901234.5678 into ...568)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(
                stream.read().decode(encoding), parse_float=Decimal, parse_constant=_no_constant
            )
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


class MetricValuesIn(serializers.Serializer):
    # Every item is taken and read on its own: a bad one is answered in `errors` (with 200) and the others
    # are stored, so the schema does not call any item invalid.
    values = serializers.ListField(
        child=serializers.JSONField(),
        help_text=f"at most {services.MAX_API_VALUES} per request; each item an object: `team` (team slug, "
        "for metrics counted per team) or `task` (task key), `period` (first day of the period: YYYY-MM-DD; "
        "for weekly metrics a Monday or YYYY-Www; for monthly ones the 1st or YYYY-MM) and `value` "
        "(a decimal, zero or more, at most 4 places)",
    )


RowErrorOut = inline_serializer(
    "MetricValueError",
    {
        "line": serializers.IntegerField(help_text="position of the item in `values`, from 1"),
        "field": serializers.CharField(),
        "reason": serializers.CharField(),
        "message": serializers.CharField(),
    },
    many=True,
)
ImportSummaryOut = inline_serializer(
    "MetricValuesSummary",
    {
        "metric": serializers.CharField(),
        "rows": serializers.IntegerField(),
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "errors": RowErrorOut,
    },
)
DetailOut = inline_serializer("MetricValuesDetail", {"detail": serializers.CharField()})


class MetricValuesView(APIView):
    authentication_classes = [MachineKeyAuthentication]
    permission_classes = [scope_required(KeyScope.INGEST)]
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        operation_id="metric_values_push",
        request=MetricValuesIn,
        parameters=[OpenApiParameter("key", str, OpenApiParameter.PATH, pattern=r"^[-a-zA-Z0-9_]+$")],
        responses={
            200: ImportSummaryOut,
            400: DetailOut,
            401: OpenApiResponse(DetailOut, description="no key, or an invalid or revoked one"),
            403: OpenApiResponse(DetailOut, description="the key lacks the ingest scope"),
            (404, "application/json"): OpenApiResponse(
                DetailOut, description="no metric with this key in the key's organisation"
            ),
            # A key that is not a slug matches no URL: Django's own not-found page.
            (404, "text/html"): OpenApiResponse(
                OpenApiTypes.STR, description="not a metric key (not a slug)"
            ),
            413: DetailOut,
        },
        description="Store outcome values for one metric. Same metric + team/task + period replaces the "
        "stored value; the same value again changes nothing. Bad items are listed in `errors`; "
        "the others are stored.",
    )
    def post(self, request: Request, key: str) -> Response:
        organisation = request.user.key.organisation
        metric = Metric.objects.filter(organisation=organisation, key=key).first()
        if metric is None:
            raise Http404("no such metric")
        items = request.data.get("values") if isinstance(request.data, dict) else None
        if not isinstance(items, list):
            return Response(
                {"detail": 'expected a JSON object {"values": [{"team": ..., "period": ..., "value": ...}]}'},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if len(items) > services.MAX_API_VALUES:
            return Response(
                {"detail": f"{len(items)} values; the limit is {services.MAX_API_VALUES} per request"},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        result = services.metric_values_import(
            viewer=organisation_viewer(organisation),
            rows=services.api_rows(items),
            source=f"api: {request.user.key.name}"[:200],
            metric=metric,
        )
        return Response(
            {
                "metric": metric.key,
                **result.summary(),
                "errors": [
                    {
                        "line": error.line,
                        "field": error.field,
                        "reason": error.reason,
                        "message": error.message(),
                    }
                    for error in result.errors
                ],
            }
        )
