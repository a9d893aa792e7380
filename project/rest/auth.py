"""Authentication (HTTP Basic, checked by project.backends; the console's session) and the role
permissions every face checks."""

from django.contrib.auth import authenticate
from rest_framework import authentication, exceptions, permissions

from project import tenancy, throttle


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic, what Camunda and Flowable clients send; a failed login answers 401. The
    password is checked by project.backends (throttle, verified-credentials cache), like every
    other login."""

    www_authenticate_realm = "taskyard"

    def authenticate_credentials(self, userid, password, request=None):
        user = authenticate(request=request, username=userid, password=password)
        if user is not None:
            return user, None
        if throttle.was_throttled(request):
            raise exceptions.AuthenticationFailed("Too many failed logins; try again later.")
        raise exceptions.AuthenticationFailed("Invalid username/password.")


class SessionAuthentication(authentication.SessionAuthentication):
    """The console's session, so the browser can call the API too (CSRF enforced)."""


class CanView(permissions.BasePermission):
    """Viewers, operators and admins may read; worker accounts only use worker endpoints."""

    message = "You are not allowed to read jobs or external tasks."

    def has_permission(self, request, view):
        return tenancy.can_view(request.user)


class CanOperate(permissions.BasePermission):
    message = "Only operators and admins may change jobs or external tasks."

    def has_permission(self, request, view):
        return tenancy.can_operate(request.user)


class CanDelete(permissions.BasePermission):
    message = "Only admins may delete."

    def has_permission(self, request, view):
        return tenancy.can_delete(request.user)


class CanWork(permissions.BasePermission):
    message = "Only worker accounts, operators and admins may fetch and complete work."

    def has_permission(self, request, view):
        return tenancy.can_work(request.user)


# ---------------------------------------------------------------------------------------------
