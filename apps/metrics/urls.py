from django.urls import path

from apps.metrics import views

app_name = "metrics"
urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.metric_new, name="new"),
    path("upload/", views.upload, name="upload"),
    path("adoption/", views.adoption, name="adoption"),
    path("<slug:key>/", views.detail, name="detail"),
    path("<slug:key>/edit/", views.metric_edit, name="edit"),
]
