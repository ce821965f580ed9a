"""POST /api/v1/ingest/{format}/: push usage with a machine key (scope "ingest"); answers the run summary."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import MachineKeyAuthentication, scope_required
from apps.accounts.models import KeyScope
from apps.ingestion import services
from apps.ingestion.adapters import ADAPTERS

_CHUNK = 64 * 1024

RunSummary = inline_serializer(
    "RunSummary",
    {
        "run": serializers.IntegerField(),
        "rows": serializers.IntegerField(),
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "replaced": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
    },
)

Detail = inline_serializer("IngestDetail", {"detail": serializers.CharField()})
FailedRun = inline_serializer(
    "IngestFailedRun",
    {
        "detail": serializers.CharField(),
        **{
            name: serializers.IntegerField()
            for name in ("run", "rows", "accepted", "duplicates", "replaced", "rejected")
        },
    },
)


def _read_capped(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it passes `limit` (so an oversized body is never held whole)."""
    chunks, size = [], 0
    while chunk := request._request.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> Response:
    return Response(
        {"detail": f"the body is larger than the limit of {limit} bytes; send smaller batches"},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class IngestView(APIView):
    authentication_classes = [MachineKeyAuthentication]
    permission_classes = [scope_required(KeyScope.INGEST)]
    parser_classes: list = []  # the body is read raw, with a size cap, by the view

    @extend_schema(
        operation_id="ingest_push",
        request={
            "application/x-ndjson": OpenApiTypes.BINARY,
            "application/json": OpenApiTypes.ANY,  # a JSON document or JSONL: any value is read
            "text/csv": OpenApiTypes.BINARY,
        },
        parameters=[
            OpenApiParameter("source_format", str, OpenApiParameter.PATH, enum=sorted(ADAPTERS)),
            OpenApiParameter("source", str, description="data source name (default: api-{format})"),
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            200: RunSummary,
            400: OpenApiResponse(Detail, description="Content-Encoding gzip, but the body is not gzip"),
            401: OpenApiResponse(Detail, description="no key, or an invalid or revoked one"),
            403: OpenApiResponse(Detail, description="the key lacks the ingest scope"),
            404: OpenApiResponse(Detail, description="no such format"),
            409: OpenApiResponse(Detail, description="Idempotency-Key reused with another body"),
            413: OpenApiResponse(Detail, description="body larger than SPENDWATCH_INGEST_MAX_BYTES"),
            422: OpenApiResponse(
                FailedRun, description="the file as a whole could not be read (e.g. its header)"
            ),
        },
    )
    def post(self, request: Request, source_format: str) -> Response:
        # Not named `format`: DRF reads a `format` URL argument as a renderer suffix.
        format = source_format
        if format not in ADAPTERS:
            raise Http404("no such format")
        limit = settings.SPENDWATCH_INGEST_MAX_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit:
            return _too_large(limit)  # answered before the body is read
        payload = _read_capped(request, limit)
        if payload is None:
            return _too_large(limit)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                payload = services.gunzip_capped(payload, limit)
            except services.PayloadTooLarge:
                return _too_large(limit)
            except ValueError as error:
                return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        suffix = ".csv" if request.content_type.startswith("text/csv") else ".jsonl"
        source = services.source_get_or_create(
            organisation=request.user.key.organisation,
            name=request.query_params.get("source") or f"api-{format}",
            format=format,
        )
        try:
            run = services.payload_ingest(
                source=source,
                format=format,
                payload=payload,
                suffix=suffix,
                idempotency_key=request.headers.get("Idempotency-Key"),
            )
        except services.IdempotencyConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        if run.status != "completed":
            return Response(
                {"detail": f"run {run.pk} failed: {run.error}", **run.summary()},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return Response(run.summary())
