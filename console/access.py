"""Who may use the console, as one decorator: viewers browse, operators act, admins delete."""

from functools import wraps

from django.http import HttpResponseForbidden
from django.shortcuts import render

from project import tenancy


def _worker_page(request):
    # Worker accounts only fetch and complete work through the API: a page that says so.
    return render(
        request,
        "error.html",
        {
            "status": 403,
            "title": "Forbidden",
            "message": "This account may not use the console (worker accounts only "
            "fetch and complete work through the API).",
        },
        status=403,
    )


def _not_an_operator(request):
    return HttpResponseForbidden("Viewers may look but not act: ask an operator.")


def console_permission(allowed, refuse):
    """A view decorator: the view runs when `allowed(user)`, else `refuse(request)` answers."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not allowed(request.user):
                return refuse(request)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


viewer_required = console_permission(tenancy.can_view, _worker_page)
operator_required = console_permission(tenancy.can_operate, _not_an_operator)
