from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.utils.decorators import method_decorator

from project import throttle

THROTTLED_MESSAGE = "Too many failed logins. Wait a few minutes and try again."


class ThrottledErrors:
    """The login throttle is applied by the authentication backend (project.backends); a form
    only words its refusal: "too many failed logins" instead of "wrong password"."""

    def get_invalid_login_error(self):
        if throttle.was_throttled(self.request):
            return forms.ValidationError(THROTTLED_MESSAGE, code="throttled")
        return super().get_invalid_login_error()


class LoginForm(ThrottledErrors, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledErrors, AdminAuthenticationForm):
    pass


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    """Django's login; a throttled attempt answers 429."""

    form_class = LoginForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error("__all__", code="throttled"):
            response.status_code = 429
        return response
