from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from sync import graph_webhook

admin.site.site_header = "serversync administration"
admin.site.site_title = "serversync"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI with its start-up script as a file of its own (?script), not inline,
    # so the docs page keeps to the Content-Security-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Microsoft Graph's change notifications (PUSH_GRAPH_WEBHOOK_URL points here).
    path("push/graph/", graph_webhook.notifications, name="push-graph-webhook"),
    path("", include("console.urls")),
]
