"""The validator's web site (the dashboard process): the dashboard, Django's admin, static files.

Static files (the dashboard's and the admin's) are served by the site itself: the dashboard is
a small local site and needs no web server or CDN in front of it.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from validator.dashboard.views.static import static

urlpatterns = [
    path("admin/", admin.site.urls),
    path("static/<path:path>", static, name="static"),
    path("favicon.ico", login_not_required(RedirectView.as_view(url="/static/dashboard/favicon.svg"))),
    path("", include("validator.dashboard.urls")),
]
