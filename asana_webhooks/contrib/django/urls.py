"""The webhook view, set up from ``settings.ASANA_WEBHOOKS``.

Route every target under a prefix to it::

    urlpatterns = [path("asana/", include("asana_webhooks.contrib.django.urls"))]

The receiver is built once, when the URLconf is first loaded (it connects to nothing then).
"""

from __future__ import annotations

from django.urls import re_path

from asana_webhooks.contrib.django.conf import receiver_from_settings
from asana_webhooks.contrib.django.views import webhook_view

app_name = "asana_webhooks"
urlpatterns = [re_path(r"", webhook_view(receiver_from_settings()), name="webhook")]
