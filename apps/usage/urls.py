from django.urls import path

from apps.usage import views

app_name = "usage"
urlpatterns = [
    path("", views.reconciliation, name="reconciliation"),
    path("reconciliation.csv", views.reconciliation_csv, name="reconciliation-csv"),
]
