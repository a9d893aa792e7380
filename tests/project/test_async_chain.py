import base64

from asgiref.sync import SyncToAsync, async_to_sync
from django.conf import settings
from django.test import AsyncClient
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


def test_an_api_request_under_asgi_hops_to_a_thread_only_where_it_must(viewer_user, monkeypatch):
    """Django's own middleware hops to a thread and back for every hook under ASGI (20 hops
    for this request); ours runs the hooks that only set attributes and headers on the event
    loop, and only the view, the hooks that may touch the database and the signals hop."""
    hops = []
    original = SyncToAsync.__call__

    def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    token = base64.b64encode(b"carol:carol-password").decode()
    client = AsyncClient()

    async def get():
        response = await client.get(
            "/engine-rest/version", headers={"Authorization": f"Basic {token}"}
        )
        return response.status_code

    assert async_to_sync(get)() == 200
    hops.clear()
    assert async_to_sync(get)() == 200
    assert len(hops) <= 8, hops
