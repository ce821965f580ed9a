from django.urls import path

from apps.overuse import views

app_name = "overuse"
urlpatterns = [
    path("", views.savings, name="savings"),
    path("feedback/<int:observation_id>/not-trivial/", views.not_trivial, name="not_trivial"),
]
