from django.urls import path

from . import views

app_name = "billing"
urlpatterns = [
    path("webhooks/<slug:gateway_name>/", views.webhook, name="webhook"),
    path("pay/", views.pay, name="pay"),
    path("manage/", views.manage, name="manage"),
    path("fake/pay/<int:membership_id>/", views.fake_pay, name="fake_pay"),
    path("fake/billing/", views.fake_self_service, name="fake_self_service"),
    path("fake/billing/fail-renewal/", views.fake_fail_renewal, name="fake_fail_renewal"),
]
