from django.urls import path

from apps.budgets import views

app_name = "budgets"
urlpatterns = [
    path("", views.limit_list, name="list"),
    path("new/", views.limit_new, name="new"),
    path("settings/", views.budget_settings, name="settings"),
    path("<int:limit_id>/", views.limit_detail, name="detail"),
    path("<int:limit_id>/edit/", views.limit_edit, name="edit"),
    path("<int:limit_id>/deactivate/", views.limit_deactivate, name="deactivate"),
]
