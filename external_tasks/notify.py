"""Long-polling fetchAndLock: wake-ups, and one dispatcher per event loop that claims for waiters.

A waiting request holds no database connection and no thread: it registers a `Waiter` (its
topics, its claim, FIFO order) with its event loop's `Dispatcher` and awaits a future. The
dispatcher is the only one that claims for waiters, one claim at a time on one thread, so a
process holds its LISTEN connection plus one connection for all its waiters (kept while any
waits, so a wake-up does not start with a new connection; closed with the last of them).

What wakes the dispatcher:
- PostgreSQL NOTIFY on channel `taskyard_external_tasks` (payload: topic name), sent inside the
  transaction that made a task fetchable, so every server process hears it at commit. One
  LISTEN connection per event loop.
- in-process announcements after commit (all databases), so SQLite and single-process setups
  wake at once too.
For an announced topic it claims for the oldest waiter interested in it, hands it the tasks, and
goes on with the next waiter only while claims come back full: one new task wakes one waiter,
not the herd. A claim that comes back short also skips, for this round, every other waiter with
the same user and the same topic filters (theirs would find nothing either); waiters with other
filters still get their turn.

- every `interval` seconds one query over the union of waiting topics (not one claim per waiter)
  finds what nobody announces: locks and retry timeouts that ran out since the last check (on
  PostgreSQL, where every other change is announced), or anything fetchable (on SQLite, where
  other processes cannot announce, and while LISTEN is down). Topics it finds get a round.

A request that ends while its claim runs never loses tasks: after a timeout it waits for that
claim and answers its tasks; after a disconnect the tasks go back (`services.release`) and are
announced again for the next waiter.
"""

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from external_tasks.models import ExternalTask
from project import metrics

logger = logging.getLogger(__name__)

CHANNEL = "taskyard_external_tasks"
ANY = "*"

_dispatchers: dict[asyncio.AbstractEventLoop, "Dispatcher"] = {}
_dispatchers_lock = threading.Lock()


def wake(topics) -> None:
    """Tell the dispatchers of this process that tasks of `topics` (or ANY) may be fetchable.
    Thread-safe. A dispatcher that listens hears the same announcement by NOTIFY: not twice."""
    topics = frozenset(topics)
    with _dispatchers_lock:
        targets = [d for d in _dispatchers.values() if not (d.windowed and d.listening)]
    for dispatcher in targets:
        with contextlib.suppress(RuntimeError):  # the dispatcher's loop is closed
            dispatcher.loop.call_soon_threadsafe(dispatcher.announce, topics)


def announce(topics) -> None:
    """Call inside the transaction that made tasks of `topics` fetchable."""
    topics = {t for t in topics if t}
    if not topics:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for topic in sorted(topics):
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, topic])
    transaction.on_commit(lambda: wake(topics))


def release_connection() -> None:
    """A waiting request, and the dispatcher between rounds, holds no database connection.
    Inside a test's wrapping transaction the connection is the test's, so it stays."""
    if not connection.in_atomic_block:
        connection.close()


def fetchable_topics(topics, since) -> tuple:
    """(now, the topics among `topics` with a fetchable task). With `since`, only tasks whose
    lock or retry timeout ran out after it: what no announcement reports."""
    now = timezone.now()
    fetchable = ExternalTask.objects.fetchable(now).filter(topic_name__in=sorted(topics))
    if since is not None:
        fetchable = fetchable.filter(lock_expiration_time__gt=since)
    found = fetchable.order_by().values_list("topic_name", flat=True).distinct()
    return now, set(found)


# One thread runs every dispatcher claim of the process (under ASGI): claims are serial anyway.
_claim_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="long-poll-claims")


def runner(thread_sensitive: bool):
    """How a dispatcher runs sync database work: on the shared claim thread, or (WSGI, the test
    client) on the request's own thread, whose connection a test's transaction lives on."""
    if thread_sensitive:
        return lambda function, *args: sync_to_async(function, thread_sensitive=True)(*args)
    return lambda function, *args: sync_to_async(
        function, thread_sensitive=False, executor=_claim_executor
    )(*args)


class Waiter:
    """One waiting fetchAndLock request.

    `claim()` claims for it and returns the tasks as answered (dicts with "id"); `release(tasks)`
    gives back tasks claimed after the request ended. Waiters with the same `key` (user and
    topic filters) find the same tasks. `seen` is `Dispatcher.mark()` taken before the
    request's own first claim."""

    def __init__(self, *, topics, key, max_tasks, claim, release, seen):
        self.topics = frozenset(topics)
        self.key = key
        self.max_tasks = max_tasks
        self.claim = claim
        self.release = release
        self.seen = seen
        self.future = asyncio.get_running_loop().create_future()
        self.claiming = False
        self.timed_out = False  # its time ran out during a claim: it waits for that claim only
        self.gone = False


class Dispatcher:
    """Claims for the waiters of one event loop: one round per announcement, one cheap
    re-check per interval (see the module docstring)."""

    def __init__(self, run, interval: float, *, windowed: bool = False):
        self.loop = asyncio.get_running_loop()
        self.run = run
        self.interval = interval
        # Re-check only expired locks: every other change is announced (PostgreSQL + LISTEN).
        self.windowed = windowed
        self.listening = not windowed  # in-process announcements reach a dispatcher at once
        self.ready = asyncio.Event()
        self.waiters: dict[Waiter, None] = {}  # insertion order = FIFO
        self.dirty: set[str] = set()
        self.returned: list[tuple[Waiter, list]] = []
        self.wakeup = asyncio.Event()
        self.seq = 0
        self.announced: dict[str, int] = {}
        self.announced_any = 0
        self.since = None  # the last re-check's time: its window's start
        self.rechecks = self.claims = 0
        self.connected = False  # the claim thread may hold a connection
        self.task = None
        self.listener = None

    # -- for waiters (all on the dispatcher's loop) ---------------------------------------------

    def mark(self) -> tuple[int, object]:
        """Taken before a request's first claim: announcements after it, and locks expiring
        after it, are checked again when the request starts waiting."""
        return (self.seq if self.listening else -1), timezone.now()

    async def wait(self, waiter: Waiter, timeout: float) -> list:
        """Wait up to `timeout` seconds for tasks claimed for `waiter`; [] if none came. The
        request counts in the long-poll waiter gauge for as long as it waits here."""
        with metrics.long_poll_waiting():
            return await self._wait(waiter, timeout)

    async def _wait(self, waiter: Waiter, timeout: float) -> list:
        self._register(waiter)
        try:
            try:
                return await asyncio.wait_for(asyncio.shield(waiter.future), max(timeout, 0))
            except TimeoutError:
                if waiter.claiming:  # its claim is under way: answer what it brings
                    waiter.timed_out = True
                    return await waiter.future
                return []
        except asyncio.CancelledError:  # the client went away
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                self._give_back(waiter, future.result())
            raise
        finally:
            waiter.gone = True
            self.waiters.pop(waiter, None)
            if not self.waiters:
                self.wakeup.set()  # the dispatcher lets its connection go

    def _register(self, waiter: Waiter) -> None:
        if not self.waiters:
            self.wakeup.set()  # the loop starts its re-check timer
        self.waiters[waiter] = None
        seq, started = waiter.seen
        latest = max([self.announced_any, *(self.announced.get(t, 0) for t in waiter.topics)])
        if seq < 0 or latest > seq:
            # Something was announced between its first claim and now (or we cannot know).
            self.dirty |= waiter.topics
            self.wakeup.set()
        if self.since is not None:
            self.since = min(self.since, started)

    def _give_back(self, waiter: Waiter, tasks: list) -> None:
        self.returned.append((waiter, tasks))
        self.wakeup.set()

    # -- wake-ups --------------------------------------------------------------------------------

    def announce(self, topics) -> None:
        self.seq += 1
        if ANY in topics:
            self.announced_any = self.seq
        for topic in topics:
            self.announced[topic] = self.seq
        if any(ANY in topics or w.topics & topics for w in self.waiters):
            self.dirty |= topics
            self.wakeup.set()

    # -- the loop --------------------------------------------------------------------------------

    def start(self, conninfo: str | None) -> None:
        self.task = self.loop.create_task(self._main())
        if conninfo is None:
            self.ready.set()
        else:
            self.listener = self.loop.create_task(_listen(conninfo, self))

    async def _main(self):
        next_check = None
        try:
            while True:
                if not self.waiters:
                    next_check = None
                elif next_check is None:
                    next_check = time.monotonic() + self.interval
                timeout = None if next_check is None else max(next_check - time.monotonic(), 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), timeout)
                recheck = next_check is not None and time.monotonic() >= next_check
                if recheck:
                    next_check = time.monotonic() + self.interval
                try:
                    await self.step(recheck=recheck)
                except Exception:
                    logger.exception("long-poll dispatcher round failed")
                    with contextlib.suppress(Exception):
                        await self.run(release_connection)
                    await asyncio.sleep(min(self.interval, 1))
        finally:
            with _dispatchers_lock:
                if _dispatchers.get(self.loop) is self:
                    del _dispatchers[self.loop]
            if self.listener:
                self.listener.cancel()

    async def step(self, recheck: bool = False) -> None:
        """One turn: give back orphaned tasks, re-check if asked, claim for announced topics."""
        self.wakeup.clear()
        returned, self.returned = self.returned, []
        topics, self.dirty = self.dirty, set()
        worked = bool(returned)
        try:
            while returned:
                waiter, tasks = returned[0]
                await self.run(waiter.release, tasks)
                returned.pop(0)
                topics |= waiter.topics
            if recheck and self.waiters:
                worked = True
                waiting = set().union(*(w.topics for w in self.waiters))
                since = self.since if self.windowed and self.listening else None
                self.rechecks += 1
                self.since, found = await self.run(fetchable_topics, waiting, since)
                topics |= found
            if topics and self.waiters:
                worked = True
                await self._round(topics)
        except Exception:
            # A connection blip: what this turn had to do is done on the next one, after the
            # loop backed off (an announcement is not lost, a give-back not forgotten).
            self.returned[:0] = returned
            self.dirty |= topics
            self.wakeup.set()
            raise
        self.connected = self.connected or worked
        if self.connected and not self.waiters:
            # The connection stays while requests wait (no new connection per wake-up) and goes
            # with the last of them.
            self.connected = False
            await self.run(release_connection)

    async def _round(self, topics) -> None:
        short = set()  # keys whose claim came back short: nothing more for them right now
        for waiter in list(self.waiters):
            if waiter.gone or waiter.future.done() or waiter.key in short:
                continue
            if ANY not in topics and not waiter.topics & topics:
                continue
            waiter.claiming = True
            self.claims += 1
            try:
                tasks = await self._claim(waiter)
            except (OperationalError, InterfaceError):
                # The database is away (the claim failed on two connections): nothing was
                # claimed, so the request keeps waiting, and step() tries the round again once
                # the loop backed off. A request whose time ran out meanwhile answers [].
                if waiter.timed_out and not waiter.future.done():
                    waiter.future.set_result([])
                raise
            except Exception as error:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
                continue
            finally:
                waiter.claiming = False
            if len(tasks) < waiter.max_tasks:
                short.add(waiter.key)
            if not tasks:
                if waiter.timed_out and not waiter.future.done():
                    waiter.future.set_result([])  # it waits for this claim only
                continue
            if waiter.gone or waiter.future.done():
                await self.run(waiter.release, tasks)
                short.discard(waiter.key)  # what it gave back is fetchable again
            else:
                waiter.future.set_result(tasks)
                self.waiters.pop(waiter, None)
                await asyncio.sleep(0)  # let it answer before the next claim

    async def _claim(self, waiter: Waiter) -> list:
        """The waiter's claim; once more on a new connection if the kept one failed (a claim
        that fails is rolled back)."""
        try:
            return await self.run(waiter.claim)
        except Exception:
            await self.run(release_connection)
            return await self.run(waiter.claim)


async def dispatcher(run, interval: float, conninfo: str | None) -> Dispatcher:
    """This event loop's dispatcher, started on first use; with `conninfo` (PostgreSQL) it
    listens, and this waits (up to 5 s) until it does."""
    loop = asyncio.get_running_loop()
    with _dispatchers_lock:
        current = _dispatchers.get(loop)
        if current is None:
            current = _dispatchers[loop] = Dispatcher(run, interval, windowed=bool(conninfo))
            current.start(conninfo)
    with contextlib.suppress(TimeoutError):  # without LISTEN it re-checks everything
        await asyncio.wait_for(current.ready.wait(), timeout=5)
    return current


def current_mark():
    """`Dispatcher.mark()` of this loop's dispatcher, or "check again" when there is none (or
    no loop: a sync caller)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _dispatchers_lock:
        current = _dispatchers.get(loop)
    return current.mark() if current else (-1, timezone.now())


# ---------------------------------------------------------------------------------------------
# PostgreSQL listener: one per dispatcher.


def listener_conninfo() -> str | None:
    """Connection string for the listener, or None when the database has no LISTEN."""
    if connection.vendor != "postgresql":
        return None
    from psycopg.conninfo import make_conninfo

    params = connection.get_connection_params()
    keep = {"dbname", "user", "password", "host", "port", "sslmode", "options"}
    return make_conninfo("", **{k: v for k, v in params.items() if k in keep and v})


async def _listen(conninfo: str, dispatcher: Dispatcher):
    import psycopg

    delay = 0.1
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                dispatcher.listening = True
                dispatcher.ready.set()
                # Whatever was announced while nobody listened: check every waiting topic.
                dispatcher.announce(frozenset({ANY}))
                delay = 0.1
                async for message in conn.notifies():
                    dispatcher.announce(frozenset({message.payload}))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("LISTEN connection lost; reconnecting", exc_info=True)
            dispatcher.listening = False
            dispatcher.ready.set()  # waiters fall back to full re-checks meanwhile
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
