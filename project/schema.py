"""OpenAPI descriptions of our authentication classes (drf-spectacular matches exact classes)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BasicAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "project.rest.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}


class SessionAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "project.rest.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
