import os
import socket

import uvicorn
from django.core.management.base import BaseCommand
from uvicorn.supervisors import Multiprocess

APP = "project.asgi:application"


class _Config(uvicorn.Config):
    """uvicorn's configuration with a listening socket that asyncio recognises as TCP.

    For `--workers`, uvicorn (0.54) binds a socket made without IPPROTO_TCP, and asyncio sets
    TCP_NODELAY only on connections of sockets that say TCP: every response (headers and body
    are two writes) then waited 40 ms for the client's delayed ACK. Re-wrapping the descriptor
    lets Python read the protocol back from the kernel; the flag is also set on the listening
    socket, which accepted connections inherit on Linux."""

    def bind_socket(self) -> socket.socket:
        sock = socket.socket(fileno=super().bind_socket().detach())
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.set_inheritable(True)
        return sock


class Command(BaseCommand):
    help = (
        "Serve the console and the APIs with uvicorn; --workers N processes share one socket "
        "(what `uvicorn --workers` does, without its 40 ms stall per response)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("WEB_CONCURRENCY") or 1),
            help="processes (default: WEB_CONCURRENCY or 1); one per core",
        )
        parser.add_argument(
            "--forwarded-allow-ips",
            default=None,
            help="proxies whose X-Forwarded-For/-Proto are trusted (uvicorn's option)",
        )
        parser.add_argument("--timeout-graceful-shutdown", type=int, default=30)
        parser.add_argument("--log-level", default="warning")
        parser.add_argument("--access-log", action="store_true")

    def handle(self, **options):
        config = _Config(
            APP,
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            proxy_headers=True,
            forwarded_allow_ips=options["forwarded_allow_ips"],
            timeout_graceful_shutdown=options["timeout_graceful_shutdown"],
            log_level=options["log_level"],
            # uvicorn's loggers propagate to the handler settings.LOGGING configured, so its
            # lines (tracebacks of the app included) get our format and our escaping too.
            log_config=None,
            access_log=options["access_log"],
        )
        sock = config.bind_socket()
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            config.load_app()
            uvicorn.Server(config).run(sockets=[sock])
