from django.urls import path

from apps.ingestion import pull_views, views

app_name = "ingestion"
urlpatterns = [
    path("upload/", views.upload, name="upload"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/rejected.csv", views.rejected_csv, name="rejected-csv"),
    path("runs/<int:run_id>/rejected.jsonl", views.rejected_lines, name="rejected-lines"),
    path("pulls/", pull_views.pull_source_list, name="pulls"),
    path("pulls/<int:source_id>/", pull_views.pull_source_edit, name="pull-edit"),
    path("pulls/<int:source_id>/pull-now/", pull_views.pull_source_now, name="pull-now"),
]
