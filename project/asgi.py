import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

# Django gives every request its own thread for thread-sensitive sync code (the sync halves of
# middleware), kept until the request ends. A long-polling fetch may wait 30 minutes, so 200
# waiting workers would park 200 threads. For those requests only, that short sync work runs on
# one shared thread instead; their waiting happens on the event loop and claims run in the
# default pool, so a waiting request owns no thread.
LONG_POLL_PATHS = frozenset({"/engine-rest/external-task/fetchAndLock"})
_long_poll_sync_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="long-poll-sync")


async def application(scope, receive, send):
    if scope["type"] == "http" and scope.get("path") in LONG_POLL_PATHS:
        async with ThreadSensitiveContext(executor=_long_poll_sync_executor):
            await django_application(scope, receive, send)
        return
    await django_application(scope, receive, send)
