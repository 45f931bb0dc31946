"""The dashboard's pages (namespace ``dashboard``); every one but the login's needs a signed-in user."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from validator.dashboard.views import blacklist, jobs, live, miners, overview, routing, scores

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="dashboard/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("live/events", live.events, name="live-events"),
    path("charts/", overview.charts_fragment, name="charts"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<str:job_id>/", jobs.job_detail, name="job"),
    path("miners/", miners.miner_list, name="miners"),
    path("miners/<str:hotkey>/", miners.miner_detail, name="miner"),
    path("miners/<str:hotkey>/blacklist/", miners.miner_blacklist, name="miner-blacklist"),
    path("miners/<str:hotkey>/lift/", miners.miner_lift, name="miner-lift"),
    path("blacklist/", blacklist.blacklist, name="blacklist"),
    path("blacklist/<int:entry_id>/lift/", blacklist.blacklist_lift, name="blacklist-lift"),
    path("routing/", routing.routing, name="routing"),
    path("scores/", scores.scores, name="scores"),
]
