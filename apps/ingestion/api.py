"""POST /api/v1/ingest/{format}/: push usage with a machine key (scope "ingest"); answers the run summary."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import MachineKeyAuthentication, scope_required
from apps.accounts.models import KeyScope
from apps.ingestion import buffer, services
from apps.ingestion.adapters import ADAPTERS
from apps.ingestion.models import BufferedRequest

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
Receipt = inline_serializer(
    "IngestReceipt",
    {
        "receipt": serializers.IntegerField(),
        "status": serializers.ChoiceField(["queued", "pending", "completed", "failed"]),
        "status_url": serializers.CharField(),
    },
)
ReceiptStatus = inline_serializer(
    "IngestReceiptStatus",
    {
        "receipt": serializers.IntegerField(),
        "received_at": serializers.DateTimeField(),
        "status": serializers.ChoiceField(["queued", "pending", "completed", "failed"]),
        "run": serializers.IntegerField(allow_null=True),
        "error": serializers.CharField(required=False),
        "rejected_rows": inline_serializer(
            "IngestReceiptRejectedRow",
            {
                "line": serializers.IntegerField(),
                "field": serializers.CharField(),
                "reason": serializers.CharField(),
                "raw": serializers.CharField(),
            },
            many=True,
        ),
    },
)
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
            OpenApiParameter(
                "Prefer",
                str,
                OpenApiParameter.HEADER,
                required=False,
                # RFC 7240: preferences the server does not know are ignored, so no enum here.
                description="respond-async: store the body and answer 202 with a receipt at once; a worker "
                "ingests it within seconds (for gateways sending a record per request). Bodies over "
                "SPENDWATCH_INGEST_BUFFER_MAX_BYTES are ingested at once whatever this says.",
            ),
        ],
        responses={
            200: RunSummary,
            202: OpenApiResponse(Receipt, description="Prefer: respond-async: the body is stored"),
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
        buffered = _prefers_async(request) and len(payload) <= settings.SPENDWATCH_INGEST_BUFFER_MAX_BYTES
        accept = buffer.buffered_accept if buffered else services.payload_ingest
        try:
            accepted = accept(
                source=source,
                format=format,
                payload=payload,
                suffix=suffix,
                idempotency_key=request.headers.get("Idempotency-Key"),
            )
        except services.IdempotencyConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        if buffered:
            url = reverse("api-ingest-receipt", args=[accepted.pk])
            return Response(
                {
                    "receipt": accepted.pk,
                    "status": buffer.receipt_status(accepted)["status"],
                    "status_url": url,
                },
                status=status.HTTP_202_ACCEPTED,
                headers={"Preference-Applied": "respond-async", "Location": url},
            )
        run = accepted
        if run.status != "completed":
            return Response(
                {"detail": f"run {run.pk} failed: {run.error}", **run.summary()},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return Response(run.summary())


def _prefers_async(request: Request) -> bool:
    """RFC 7240: `Prefer: respond-async` (among other preferences, any case)."""
    preferences = request.headers.get("Prefer", "")
    return any(item.split(";")[0].strip().lower() == "respond-async" for item in preferences.split(","))


class IngestReceiptView(APIView):
    """What became of a body sent with `Prefer: respond-async`; only for keys of its organisation."""

    authentication_classes = [MachineKeyAuthentication]
    permission_classes = [scope_required(KeyScope.INGEST)]

    @extend_schema(
        operation_id="ingest_receipt",
        parameters=[OpenApiParameter("receipt_id", int, OpenApiParameter.PATH)],
        responses={
            200: ReceiptStatus,
            401: OpenApiResponse(Detail, description="no key, or an invalid or revoked one"),
            403: OpenApiResponse(Detail, description="the key lacks the ingest scope"),
            404: OpenApiResponse(Detail, description="no such receipt in the key's organisation"),
        },
    )
    def get(self, request: Request, receipt_id: str) -> Response:
        if not (receipt_id.isascii() and receipt_id.isdigit()) or len(receipt_id) > 18:
            raise Http404("no such receipt")
        receipt = (
            BufferedRequest.objects.filter(organisation=request.user.key.organisation, pk=int(receipt_id))
            .select_related("run")
            .defer("body")
            .first()
        )
        if receipt is None:
            raise Http404("no such receipt")
        return Response(buffer.receipt_status(receipt))
