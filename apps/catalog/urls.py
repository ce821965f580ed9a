from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.prices, name="prices"),
    path("overrides/<int:override_id>/", views.override_edit, name="override-edit"),
    path("overrides/<int:override_id>/delete/", views.override_delete, name="override-delete"),
    path("mappings/<int:mapping_id>/delete/", views.mapping_delete, name="mapping-delete"),
    path("unpriced/", views.unpriced, name="unpriced"),
    path("unpriced/<int:model_id>/map/", views.unpriced_map, name="unpriced-map"),
    path("unpriced/<int:model_id>/price/", views.unpriced_price, name="unpriced-price"),
]
