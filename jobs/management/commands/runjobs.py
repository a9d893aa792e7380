"""Run jobs: `python manage.py runjobs [--concurrency N] [--queue Q] [--once] ...`."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from jobs import claims, conf, executor


class Command(BaseCommand):
    help = (
        "Run executable jobs (django.tasks and Camunda-style jobs): claim them exclusively, run "
        "their handlers, delete them on success, retry with back-off on failure. SIGTERM or "
        "SIGINT stops after the running jobs; a second signal interrupts and releases them."
    )

    def add_arguments(self, parser):
        self.add_work_arguments(parser)
        self.add_timing_arguments(parser)

    def add_work_arguments(self, parser):
        """Which jobs to run, how many at once, and when to stop."""
        parser.add_argument(
            "--concurrency",
            type=int,
            default=1,
            help="Executor processes to run in parallel (default 1).",
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            default=[],
            metavar="NAME",
            help="Only run jobs of this queue; repeat or comma-separate for several "
            "(default: every queue).",
        )
        parser.add_argument(
            "--prefetch",
            type=int,
            default=None,
            help="Jobs each process claims per statement (default TASKYARD_EXECUTOR"
            "['PREFETCH'], 10). Fewer statements per job; the ones not started within a "
            "second are given back. 1 claims a job only when it can start it.",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Run the jobs executable now, then exit instead of waiting for more.",
        )
        parser.add_argument(
            "--max-jobs",
            type=int,
            default=None,
            help="Exit after running this many jobs (in total over all processes).",
        )

    def add_timing_arguments(self, parser):
        """Locks, polling, time limits and retries; defaults from TASKYARD_EXECUTOR."""
        parser.add_argument(
            "--lock-time",
            default=None,
            help="How long a claimed job stays locked without renewal, in seconds or as an "
            "ISO 8601 duration (default TASKYARD_EXECUTOR['LOCK_TIME'], PT5M). Running jobs "
            "are renewed every third of it; a crashed executor's jobs run again after it.",
        )
        parser.add_argument(
            "--poll-interval",
            default=None,
            help="Seconds between looks for due jobs when idle (default 1; PostgreSQL also "
            "wakes at once on new jobs through LISTEN/NOTIFY).",
        )
        parser.add_argument(
            "--timeout",
            default=None,
            help="Fail a job whose handler runs longer than this, in seconds or as an ISO "
            "8601 duration (default TASKYARD_EXECUTOR['TIMEOUT']: none).",
        )
        parser.add_argument(
            "--retry-cycle",
            default=None,
            help="Retry cycle for failures, Camunda style: R3/PT5M or PT1M,PT5M,PT30M "
            "(default TASKYARD_EXECUTOR['RETRY_CYCLE']).",
        )
        parser.add_argument(
            "--worker-id",
            default=None,
            help="Lock owner written on claimed jobs (default host:pid).",
        )

    def handle(self, *args, **options):
        try:
            settings_options = self.executor_options(options)
        except ValueError as error:
            raise CommandError(str(error)) from None
        concurrency = options["concurrency"]
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if options["max_jobs"] is not None and options["max_jobs"] < 1:
            raise CommandError("--max-jobs must be at least 1")
        if settings_options.prefetch < 1:
            raise CommandError("--prefetch must be at least 1")
        code = executor.run_pool(settings_options, concurrency)
        if code:
            raise CommandError("an executor process failed", returncode=code)

    def executor_options(self, options) -> executor.ExecutorOptions:
        def seconds(name, setting):
            value = options[name]
            if value is None:
                value = conf.executor_setting(setting)
            return conf.parse_seconds(value, f"--{name.replace('_', '-')}")

        lock_time = seconds("lock_time", "LOCK_TIME")
        if not lock_time:
            raise ValueError("--lock-time must be more than 0")
        poll_interval = seconds("poll_interval", "POLL_INTERVAL") or 1.0
        cycle_text = options["retry_cycle"] or conf.executor_setting("RETRY_CYCLE")
        retry_cycle = claims.RetryCycle.parse(
            cycle_text,
            conf.executor_setting("BACKOFF_FACTOR"),
            conf.executor_setting("MAX_RETRY_DELAY"),
        )
        result = executor.ExecutorOptions(
            queues=[
                q.strip() for value in options["queues"] for q in value.split(",") if q.strip()
            ],
            lock_time=timedelta(seconds=lock_time),
            poll_interval=poll_interval,
            timeout=seconds("timeout", "TIMEOUT"),
            max_jobs=options["max_jobs"],
            once=options["once"],
            retry_cycle=retry_cycle,
            prefetch=(
                options["prefetch"]
                if options["prefetch"] is not None
                else conf.executor_setting("PREFETCH")
            ),
        )
        if options["worker_id"]:
            result.worker_id = options["worker_id"]
        return result
