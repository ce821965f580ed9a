from django.urls import path

from apps.ingestion.api import IngestView

urlpatterns = [
    path("ingest/<str:source_format>/", IngestView.as_view(), name="api-ingest"),
]
