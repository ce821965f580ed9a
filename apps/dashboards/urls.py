from django.urls import path

from apps.dashboards import views, views_pages

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("teams/", views_pages.teams, name="teams"),
    path("teams/<slug:table>.csv", views_pages.teams_csv, name="teams-csv"),
    path("teams/<slug:slug>/", views_pages.team_detail, name="team"),
    path("teams/<slug:slug>/<slug:table>.csv", views_pages.team_csv, name="team-csv"),
    path("people/<int:person_id>/", views_pages.person_detail, name="person"),
    path("people/<int:person_id>/<slug:table>.csv", views_pages.person_csv, name="person-csv"),
    path("models/", views_pages.models, name="models"),
    path("models/<slug:table>.csv", views_pages.models_csv, name="models-csv"),
    path("tasks/", views_pages.tasks, name="tasks"),
    path("tasks/<slug:table>.csv", views_pages.tasks_csv, name="tasks-csv"),
    path("tasks/<slug:key>/", views_pages.task_detail, name="task"),
    path("tasks/<slug:key>/<slug:table>.csv", views_pages.task_csv, name="task-csv"),
    # Under /sources/ beside the upload, pull and run pages (apps.ingestion) and reconciliation (apps.usage).
    path("sources/", views_pages.sources, name="sources"),
    path("sources/<slug:table>.csv", views_pages.sources_csv, name="sources-csv"),
    path("facts/", views_pages.facts, name="facts"),
]
