from django.urls import path

from accounts.api import views

app_name = "accounts"
urlpatterns = [
    path("auth/token/", views.TokenObtainApi.as_view(), name="auth-token"),
    path("auth/register/", views.RegisterApi.as_view(), name="auth-register"),
]
