"""Keep enqueueing demo tasks, so a fresh console shows jobs being run, failing and retrying."""

import random
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from jobs import demo_handlers


def demo_task(rng: random.Random):
    """One random demo task, enqueued through django.tasks like application code would."""
    number = rng.randint(1000, 99999)
    choice = rng.choices(["invoice", "inventory", "report", "export", "timer"], [5, 3, 3, 1, 1])[0]
    if choice == "invoice":
        return demo_handlers.send_invoice, (number,), {"email": f"ap{number % 17}@example.com"}
    if choice == "inventory":
        return demo_handlers.sync_inventory, (f"WH-{number % 9}",), {}
    if choice == "report":
        return demo_handlers.flaky_report, (number,), {"failure_rate": 0.4}
    if choice == "export":
        return demo_handlers.slow_export, (number,), {}
    return demo_handlers.always_fails, (f"Carrier API rejected shipment {number}",), {}


class Command(BaseCommand):
    help = (
        "Enqueue demo tasks (invoices, inventory syncs, flaky reports, slow exports, a failing "
        "shipment now and then) at a steady rate; run them with `runjobs --queue demo`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=1.0, help="Tasks per second.")
        parser.add_argument("--count", type=int, default=None, help="Stop after this many.")
        parser.add_argument("--queue", default="demo", help="Queue name (default demo).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed.")

    def handle(self, *args, **options):
        if options["rate"] <= 0:
            raise CommandError("--rate must be more than 0")
        rng = random.Random(options["seed"])
        stopping = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stopping.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        enqueued = 0
        try:
            while not stopping.is_set() and (
                options["count"] is None or enqueued < options["count"]
            ):
                task, args, kwargs = demo_task(rng)
                priority = rng.choice([0, 0, 10, 50])
                task.using(queue_name=options["queue"], priority=priority).enqueue(*args, **kwargs)
                enqueued += 1
                stopping.wait(rng.expovariate(options["rate"]))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(f"Enqueued {enqueued} demo tasks on queue {options['queue']!r}.")
