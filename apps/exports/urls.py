from django.urls import path

from apps.exports import views

app_name = "exports"
urlpatterns = [
    path("spend.csv", views.spend_csv, name="spend-csv"),
    path("focus.csv", views.focus_csv, name="focus-csv"),
]
