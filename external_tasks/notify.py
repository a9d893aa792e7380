"""Wake-ups for long-polling fetchAndLock requests.

A waiting request holds no database connection and no thread: it awaits an asyncio event.
Events are set by
- PostgreSQL NOTIFY on channel `taskyard_external_tasks` (payload: topic name), sent inside the
  transaction that made a task fetchable, so delivery happens exactly at commit, to every
  server process. One LISTEN connection per process and event loop serves all waiters.
- in-process announcements after commit (all databases), so SQLite and single-process setups
  wake at once too;
- and a periodic re-check (the caller's poll interval) for everything no event announces:
  expired locks and elapsed retry timeouts, and other processes on SQLite.
"""

import asyncio
import contextlib
import logging
import threading
import weakref

from django.db import connection, transaction

logger = logging.getLogger(__name__)

CHANNEL = "taskyard_external_tasks"
ANY = "*"


class _Waiter:
    __slots__ = ("event", "loop", "topics")

    def __init__(self, loop, topics):
        self.loop = loop
        self.topics = frozenset(topics)
        self.event = asyncio.Event()


_waiters: set[_Waiter] = set()
_waiters_lock = threading.Lock()


def wake(topics) -> None:
    """Wake every waiter interested in one of `topics` (or in anything, for ANY). Thread-safe."""
    topics = set(topics)
    with _waiters_lock:
        targets = [w for w in _waiters if ANY in topics or w.topics & topics]
    for waiter in targets:
        with contextlib.suppress(RuntimeError):  # the waiter's loop is closed
            waiter.loop.call_soon_threadsafe(waiter.event.set)


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


# ---------------------------------------------------------------------------------------------
# PostgreSQL listener: one per event loop.

_listeners: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = (
    weakref.WeakKeyDictionary()
)


def _conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    params = connection.get_connection_params()
    keep = {"dbname", "user", "password", "host", "port", "sslmode", "options"}
    return make_conninfo("", **{k: v for k, v in params.items() if k in keep and v})


async def _listen(conninfo: str, ready: asyncio.Event):
    import psycopg

    delay = 0.1
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                ready.set()
                delay = 0.1
                async for message in conn.notifies():
                    wake({message.payload})
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("LISTEN connection lost; reconnecting", exc_info=True)
            ready.set()  # waiters fall back to polling meanwhile
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


async def ensure_listener(conninfo: str | None) -> None:
    """Start this loop's LISTEN task (PostgreSQL only) and wait until it listens."""
    if conninfo is None:
        return
    loop = asyncio.get_running_loop()
    task = _listeners.get(loop)
    if task is None or task.done():
        ready = asyncio.Event()
        task = loop.create_task(_listen(conninfo, ready))
        task.ready = ready
        _listeners[loop] = task
    await asyncio.wait_for(task.ready.wait(), timeout=5)


def listener_conninfo() -> str | None:
    """Connection string for the listener, or None when the database has no LISTEN."""
    if connection.vendor != "postgresql":
        return None
    return _conninfo()


async def wait(topics, timeout: float) -> bool:
    """Wait up to `timeout` seconds for an announcement on one of `topics`; True if woken."""
    waiter = _Waiter(asyncio.get_running_loop(), topics)
    with _waiters_lock:
        _waiters.add(waiter)
    try:
        await asyncio.wait_for(waiter.event.wait(), timeout=max(timeout, 0))
        return True
    except TimeoutError:
        return False
    finally:
        with _waiters_lock:
            _waiters.discard(waiter)
