from django.conf import settings
from django.utils.module_loading import import_string


def test_every_middleware_is_async_capable():
    """One sync-only middleware would pin each long-polling request to a blocked thread."""
    sync_only = [
        path
        for path in settings.MIDDLEWARE
        if not getattr(import_string(path), "async_capable", False)
    ]
    assert sync_only == []


def test_static_files_are_served_without_login(client, db):
    response = client.get("/static/.gitkeep")
    assert response.status_code == 200
