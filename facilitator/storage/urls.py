"""Signed object URLs of the default store; mount with ``path("objects/", include("facilitator.storage.urls"))``.

The store's ``base_url`` option must point at where this is mounted (default ``/objects/``).
"""

from django.urls import path

from facilitator.storage.views import object_view

app_name = "storage"
urlpatterns = [path("<path:key>", object_view, {"alias": "default"}, name="object")]
