"""Demo external task workers that speak Camunda's REST protocol to a running Taskyard.

They fetch and lock tasks over HTTP like any Camunda external task client, take a moment, and
then complete most tasks, report a failure for some (retries count down, then an incident) and
throw a BPMN error now and then, so the console shows workers at work. Standard library only:
`make run` installs no development packages.
"""

import base64
import json
import random
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from django.core.management.base import BaseCommand, CommandError

DEFAULT_TOPICS = [
    "send-invoice",
    "archive-invoice",
    "reserve-stock",
    "charge-credit-card",
    "ship-parcel",
    "kyc-check",
    "send-welcome-mail",
    "match-payments",
    "assess-claim",
    "notify-customer",
]
FAILURES = [
    ("Payment provider timed out", "java.net.SocketTimeoutException: Read timed out"),
    ("Carrier API answered 503", "HTTP 503 Service Unavailable from carrier gateway"),
    ("Address could not be validated", "ValidationError: postal code does not match city"),
]


class Worker(threading.Thread):
    def __init__(self, command, number: int, options, stopping: threading.Event, rng):
        super().__init__(name=f"demo-worker-{number}", daemon=True)
        self.command = command
        self.worker_id = f"demo-worker-{number}"
        self.options = options
        self.stopping = stopping
        self.rng = rng
        self.handled = 0
        token = base64.b64encode(f"{options['username']}:{options['password']}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, path: str, body: dict):
        request = urllib.request.Request(
            f"{self.options['url'].rstrip('/')}/{path}",
            data=json.dumps(body).encode(),
            headers=self.headers,
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
        return json.loads(data) if data else None

    def run(self):
        limit = self.options["max_tasks"]
        while not self.stopping.is_set() and (limit is None or self.handled < limit):
            try:
                tasks = self.call(
                    "external-task/fetchAndLock",
                    {
                        "workerId": self.worker_id,
                        "maxTasks": 1,
                        "usePriority": True,
                        "asyncResponseTimeout": 5000,
                        "topics": [
                            {"topicName": topic, "lockDuration": 60000}
                            for topic in self.options["topics"]
                        ],
                    },
                )
                for task in tasks or []:
                    self.handle(task)
            except (urllib.error.URLError, OSError, ValueError) as error:
                self.command.stderr.write(f"{self.worker_id}: {error}; retrying")
                self.stopping.wait(2)

    def handle(self, task: dict):
        self.stopping.wait(self.rng.uniform(0, self.options["pace"]))
        roll = self.rng.random()
        task_path = f"external-task/{task['id']}"
        if roll < 0.75:
            self.call(
                f"{task_path}/complete",
                {
                    "workerId": self.worker_id,
                    "variables": {
                        "handledBy": {"value": self.worker_id, "type": "String"},
                        "confirmation": {"value": self.rng.randint(10**5, 10**6), "type": "Long"},
                    },
                },
            )
        elif roll < 0.93:
            message, details = self.rng.choice(FAILURES)
            retries = task.get("retries")
            self.call(
                f"{task_path}/failure",
                {
                    "workerId": self.worker_id,
                    "errorMessage": message,
                    "errorDetails": details,
                    "retries": 2 if retries is None else max(retries - 1, 0),
                    "retryTimeout": 60000,
                },
            )
        else:
            self.call(
                f"{task_path}/bpmnError",
                {
                    "workerId": self.worker_id,
                    "errorCode": "REJECTED",
                    "errorMessage": "Business rule rejected the request",
                },
            )
        self.handled += 1


def rng(seed: int | None, number: int) -> random.Random:
    return random.Random(None if seed is None else seed + number)


class Command(BaseCommand):
    help = (
        "Run demo Camunda-protocol external task workers against a Taskyard server: they "
        "complete most tasks, fail some and throw a BPMN error now and then."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/engine-rest")
        parser.add_argument("--username", default="worker")
        parser.add_argument("--password", default="taskyard-worker")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument(
            "--topic", action="append", dest="topics", default=[], help="Repeat for several."
        )
        parser.add_argument(
            "--pace", type=float, default=3.0, help="Longest pretend work per task, seconds."
        )
        parser.add_argument(
            "--max-tasks", type=int, default=None, help="Stop each worker after this many."
        )
        parser.add_argument("--seed", type=int, default=None)

    def wait_for_server(self, url: str, stopping: threading.Event, patience: float = 60.0):
        """`make run` starts the workers beside the server: give it time to come up quietly."""
        deadline = time.monotonic() + patience
        parts = urllib.parse.urlsplit(url)
        address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        while not stopping.is_set():
            try:
                socket.create_connection(address, timeout=5).close()  # accepting connections
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise CommandError(f"No Taskyard server answers at {url}") from None
                stopping.wait(0.5)

    def handle(self, *args, **options):
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        if options["pace"] < 0:
            raise CommandError("--pace must not be negative")
        options["topics"] = options["topics"] or DEFAULT_TOPICS
        stopping = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stopping.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        seed = options["seed"]
        workers = [
            Worker(self, n + 1, options, stopping, rng(seed, n)) for n in range(options["workers"])
        ]
        try:
            self.wait_for_server(options["url"], stopping)
            for worker in workers:
                worker.start()
            while any(worker.is_alive() for worker in workers):
                time.sleep(0.2)
        finally:
            stopping.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        handled = sum(worker.handled for worker in workers)
        self.stdout.write(f"Demo workers handled {handled} external tasks.")
