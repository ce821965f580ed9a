from django.urls import path

from apps.org import views

app_name = "org"
urlpatterns = [
    path("", views.home, name="home"),
    path("rules/new/", views.rule_new, name="rule-new"),
    path("rules/<int:rule_id>/", views.rule_edit, name="rule"),
    path("rules/<int:rule_id>/delete/", views.rule_delete, name="rule-delete"),
    path("identities/", views.identity_list, name="identities"),
    path("identities/new/", views.identity_new, name="identity-new"),
    path("identities/<int:identity_id>/", views.identity_edit, name="identity"),
    path("identities/<int:identity_id>/delete/", views.identity_delete, name="identity-delete"),
    path("tasks/", views.task_list, name="tasks"),
    path("tasks/<int:task_id>/", views.task_edit, name="task"),
    path("runs/", views.run_list, name="runs"),
    path("runs/now/", views.run_now, name="run-now"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("people/", views.people_import, name="people-import"),
    path("people/<int:import_id>/", views.people_import_detail, name="people-import-detail"),
]
