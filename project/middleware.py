from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Console pages redirect to the login page; API paths are left to DRF, which answers 401."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(settings.API_PATH_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
