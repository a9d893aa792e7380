from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.utils.decorators import method_decorator

from project import throttle


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    """Django's login with failed-attempt throttling (429 once the limit is reached)."""

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        address = throttle.client_address(request)
        if throttle.is_blocked(username, address):
            form = self.get_form()
            form.is_bound = True
            form._errors, form.cleaned_data = {}, {}
            form.add_error(None, "Too many failed logins. Wait a few minutes and try again.")
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        throttle.record_failure(
            self.request.POST.get("username", ""), throttle.client_address(self.request)
        )
        return super().form_invalid(form)

    def form_valid(self, form):
        throttle.reset(form.get_user().get_username(), throttle.client_address(self.request))
        return super().form_valid(form)
