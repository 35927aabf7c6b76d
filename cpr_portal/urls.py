from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from members.language_views import set_language

from . import views

admin.site.site_header = _("CPR Portal back office")
admin.site.site_title = _("CPR Portal")
admin.site.index_title = _("Membership administration")
# Staff sign in through allauth, so the second factor applies to the back office too.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # Django's set_language under its usual name, storing a signed-in person's choice too.
    path("i18n/setlang/", set_language, name="set_language"),
    path("healthz/", views.healthz, name="healthz"),
    path("billing/", include("billing.urls")),
    path("", include("bookings.urls")),
    path("", include("members.urls")),
]

if settings.CPR_BENCHMARK_VIEWS:
    urlpatterns.insert(0, path("bench/", include("benchmarks.urls")))
