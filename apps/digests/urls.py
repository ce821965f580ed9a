from django.urls import path

from apps.digests import views

app_name = "digests"
urlpatterns = [
    path("preview/", views.preview, name="preview"),
    path("preferences/", views.preferences, name="preferences"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
