from django.urls import path

from apps.ingestion.api import IngestReceiptView, IngestView

urlpatterns = [
    # Any text, so that a malformed id is answered by the API (JSON 404), never by the HTML 404 page.
    path("ingest/receipts/<str:receipt_id>/", IngestReceiptView.as_view(), name="api-ingest-receipt"),
    path("ingest/<str:source_format>/", IngestView.as_view(), name="api-ingest"),
]
