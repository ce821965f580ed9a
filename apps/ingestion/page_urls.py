from django.urls import path

from apps.ingestion import views

app_name = "ingestion"
urlpatterns = [
    path("upload/", views.upload, name="upload"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/rejected.csv", views.rejected_csv, name="rejected-csv"),
    path("runs/<int:run_id>/rejected.jsonl", views.rejected_lines, name="rejected-lines"),
]
