from django.urls import path

from bookings.api import views

app_name = "bookings"
urlpatterns = [
    path("bookings/", views.BookingCollectionApi.as_view(), name="booking-list"),
    path("bookings/<int:booking_id>/", views.BookingDetailApi.as_view(), name="booking-detail"),
    path("bookings/<int:booking_id>/cancel/", views.BookingCancelApi.as_view(), name="booking-cancel"),
]
