from django.urls import path

from availability.api import views

app_name = "availability"
urlpatterns = [
    path("tours/", views.TourListApi.as_view(), name="tour-list"),
    path("tours/<slug:id_or_slug>/", views.TourDetailApi.as_view(), name="tour-detail"),
]
