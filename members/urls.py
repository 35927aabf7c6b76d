from django.urls import path

from . import portal, views

app_name = "members"
urlpatterns = [
    path("", views.home, name="home"),
    path("plans/<slug:slug>/", views.plan_detail, name="plan_detail"),
    path("apply/", views.apply, name="apply"),
    path("apply/thanks/", views.apply_thanks, name="apply_thanks"),
    path("portal/", portal.dashboard, name="portal_dashboard"),
    path("portal/profile/", portal.profile, name="portal_profile"),
    path("portal/memberships/<int:pk>/", portal.membership_detail, name="portal_membership"),
]
