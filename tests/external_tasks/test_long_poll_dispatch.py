"""The long-poll dispatcher (external_tasks.notify): who gets woken, what it costs, and that no
claimed task is lost to a request that ended.

Each test drives one dispatcher by hand (`step()`) on an event loop of its own; claims run on
the test's thread, inside the test's transaction, as under the Django test client.
"""

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from external_tasks import notify
from external_tasks.api import FetchRequest, waiter_for
from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.conftest import fetch_body, make_task

TOPIC = "aTopic"


def db(function, *args, **kwargs):
    """Database work from a scenario, on the test's thread and transaction."""
    return sync_to_async(function)(*args, **kwargs)


def run(scenario):
    """Run `scenario(dispatcher)` on a fresh event loop; claims run on this thread."""

    async def main():
        dispatcher = notify.Dispatcher(notify.runner(True), interval=3600)
        return await scenario(dispatcher)

    return async_to_sync(main)()


def waiter(dispatcher, user, worker, max_tasks=1, claim=None, **topic_fields):
    fetch = FetchRequest(fetch_body(TOPIC, worker, max_tasks, **topic_fields))
    made = waiter_for(user, fetch, dispatcher.mark())
    if claim:
        made.claim = claim(made.claim)
    return made


async def start(dispatcher, waiters, timeout=60):
    tasks = [asyncio.create_task(dispatcher.wait(w, timeout)) for w in waiters]
    await asyncio.sleep(0)  # each registers
    return tasks


async def settle():
    """Let the requests whose tasks were handed over run to their answer."""
    for _ in range(10):
        await asyncio.sleep(0)


async def finish(tasks):
    for task in tasks:
        task.cancel()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_one_new_task_wakes_exactly_one_waiter(worker_user):
    async def scenario(dispatcher):
        waiters = [waiter(dispatcher, worker_user, f"w{i}") for i in range(5)]
        pending = await start(dispatcher, waiters)
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        await settle()
        done = [t.done() for t in pending]
        first = pending[0].result()
        await finish(pending)
        return task, done, first, dispatcher.claims

    task, done, first, claims = run(scenario)
    assert done == [True, False, False, False, False]  # the oldest; the others keep waiting
    assert [t["id"] for t in first] == [task.id]
    # Its full claim, then one empty claim ends the round: not one claim per waiter.
    assert claims == 2
    assert ExternalTask.objects.get(pk=task.id).worker_id == "w0"


def test_many_new_tasks_serve_several_waiters_in_arrival_order(worker_user):
    async def scenario(dispatcher):
        waiters = [waiter(dispatcher, worker_user, f"w{i}", max_tasks=2) for i in range(5)]
        pending = await start(dispatcher, waiters)
        for _ in range(3):
            await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        await settle()
        got = [len(t.result()) if t.done() else None for t in pending]
        await finish(pending)
        return got, dispatcher.claims

    got, claims = run(scenario)
    assert got == [2, 1, None, None, None]
    assert claims == 2  # the second came back short: nothing is left for the rest


def test_a_waiter_with_other_filters_still_gets_its_turn(worker_user):
    async def scenario(dispatcher):
        north = waiter(dispatcher, worker_user, "north", businessKey="north")
        south = waiter(dispatcher, worker_user, "south", businessKey="south")
        other_north = waiter(dispatcher, worker_user, "north-2", businessKey="north")
        pending = await start(dispatcher, [north, south, other_north])
        task = await db(make_task, business_key="south")
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        await settle()
        got = [t.result() if t.done() else None for t in pending]
        await finish(pending)
        return task, got, dispatcher.claims

    task, got, claims = run(scenario)
    assert got[0] is None and got[2] is None
    assert [t["id"] for t in got[1]] == [task.id]
    assert claims == 2  # north came back empty, so north-2 (same filters) was not tried


def slowed(seconds: float):
    """A waiter's claim that first sleeps `seconds`: a request's 50 ms run out meanwhile."""

    def wrap(claim):
        def slow_claim():
            time.sleep(seconds)
            return claim()

        return slow_claim

    return wrap


def test_a_timed_out_waiter_whose_claim_is_under_way_answers_its_tasks(worker_user):
    async def scenario(dispatcher):
        late = waiter(dispatcher, worker_user, "late", claim=slowed(1))
        [pending] = await start(dispatcher, [late], timeout=0.05)
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        return task, await pending

    task, answered = run(scenario)
    assert [t["id"] for t in answered] == [task.id]
    assert ExternalTask.objects.get(pk=task.id).worker_id == "late"


def test_a_timed_out_waiter_whose_claim_comes_back_empty_answers_an_empty_list(worker_user):
    """It used to wait for a result no one would set: the request hung past its timeout."""

    async def scenario(dispatcher):
        late = waiter(dispatcher, worker_user, "late", claim=slowed(0.3))
        [pending] = await start(dispatcher, [late], timeout=0.05)
        dispatcher.announce({TOPIC})  # nothing to claim, but it tries
        await dispatcher.step()
        return await asyncio.wait_for(pending, 5)

    assert run(scenario) == []


def test_a_disconnected_waiters_claim_goes_to_the_next_waiter(worker_user):
    pending = []

    def disconnect_during(claim):
        def claim_then_disconnect():
            tasks = claim()
            request = pending[0]
            request.get_loop().call_soon_threadsafe(request.cancel)  # the client goes away
            while not request.done():
                time.sleep(0.001)
            return tasks

        return claim_then_disconnect

    async def scenario(dispatcher):
        gone = waiter(dispatcher, worker_user, "gone", claim=disconnect_during)
        next_in_line = waiter(dispatcher, worker_user, "next")
        pending.extend(await start(dispatcher, [gone, next_in_line]))
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        await settle()
        answered = pending[1].result() if pending[1].done() else None
        await finish(pending)
        return task, answered

    task, answered = run(scenario)
    assert pending[0].cancelled()
    assert [t["id"] for t in answered] == [task.id]
    assert ExternalTask.objects.get(pk=task.id).worker_id == "next"
    events = ExternalTaskLog.objects.filter(task_id=task.id).order_by("id")
    assert [(e.event, e.worker_id) for e in events] == [
        ("locked", "gone"),
        ("unlocked", "gone"),
        ("locked", "next"),
    ]


def test_a_request_cancelled_after_its_tasks_arrived_gives_them_back(worker_user):
    async def scenario(dispatcher):
        [pending] = await start(dispatcher, [waiter(dispatcher, worker_user, "gone")])
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher._round({TOPIC})  # the tasks are handed over ...
        pending.cancel()  # ... and the client leaves before the request could answer
        await asyncio.gather(pending, return_exceptions=True)
        await dispatcher.step()
        return task

    task = run(scenario)
    released = ExternalTask.objects.get(pk=task.id)
    assert released.worker_id is None and not released.locked


def test_the_recheck_finds_an_expired_lock_without_any_announcement(worker_user):
    async def scenario(dispatcher):
        dispatcher.windowed = dispatcher.listening = True
        # The last re-check a second ago: the lock below runs out inside the window even when
        # the steps in between take less than a millisecond (they do on SQLite).
        dispatcher.since = timezone.now() - timedelta(seconds=1)
        [pending] = await start(dispatcher, [waiter(dispatcher, worker_user, "w")])
        task = await db(make_task, locked_for=60)
        await db(
            ExternalTask.objects.filter(pk=task.pk).update,
            lock_expiration_time=timezone.now() - timedelta(milliseconds=1),
        )
        await dispatcher.step()  # no announcement: nothing to do
        claims_before = dispatcher.claims
        await dispatcher.step(recheck=True)
        return task, claims_before, await pending

    task, claims_before, answered = run(scenario)
    assert claims_before == 0
    assert [t["id"] for t in answered] == [task.id]


def test_an_announcement_between_first_claim_and_waiting_is_not_missed(worker_user):
    async def scenario(dispatcher):
        dispatcher.listening = True
        early = waiter(dispatcher, worker_user, "early")
        dispatcher.announce({TOPIC})  # a task committed after its first claim ...
        task = await db(make_task)
        [pending] = await start(dispatcher, [early])  # ... and before it waits
        await dispatcher.step()
        return task, await pending

    task, answered = run(scenario)
    assert [t["id"] for t in answered] == [task.id]


def test_idle_waiters_cost_one_query_per_recheck_and_no_claims(worker_user):
    rechecks = 5

    async def scenario(dispatcher):
        dispatcher.windowed = dispatcher.listening = True
        dispatcher.since = timezone.now()
        waiters = [waiter(dispatcher, worker_user, f"w{i}") for i in range(50)]
        pending = await start(dispatcher, waiters)
        await dispatcher.step()  # registration, nothing announced
        for _ in range(rechecks):
            await dispatcher.step(recheck=True)
        dispatcher.announce({"nobody-waits-here"})
        await dispatcher.step()
        await finish(pending)
        return dispatcher.claims

    make_task(topic_name="nobody-waits-here")
    make_task(topic_name=TOPIC, locked_for=60)
    with CaptureQueriesContext(connection) as queries:
        claims = run(scenario)
    assert claims == 0
    # One shared query per interval, not one claim per waiter.
    assert len(queries) <= rechecks, [q["sql"] for q in queries]


def test_a_timed_out_waiter_leaves_the_queue_and_gets_nothing_later(worker_user):
    async def scenario(dispatcher):
        early, later = (
            waiter(dispatcher, worker_user, "early"),
            waiter(dispatcher, worker_user, "later"),
        )
        [timed_out] = await start(dispatcher, [early], timeout=0)
        [pending] = await start(dispatcher, [later])
        first = await timed_out
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        return task, first, await pending, len(dispatcher.waiters)

    task, first, answered, left = run(scenario)
    assert first == []
    assert [t["id"] for t in answered] == [task.id]
    assert left == 0


def test_a_listening_dispatcher_hears_a_commit_once_not_also_in_process(worker_user):
    async def scenario(dispatcher):
        loop = asyncio.get_running_loop()
        notify._dispatchers[loop] = dispatcher
        try:
            [pending] = await start(dispatcher, [waiter(dispatcher, worker_user, "w")])
            dispatcher.listening = True
            dispatcher.windowed = True  # NOTIFY brings every announcement: no second round
            notify.wake({TOPIC})
            await settle()
            heard_listening = dispatcher.seq
            dispatcher.windowed = False  # SQLite: the in-process wake-up is the announcement
            notify.wake({TOPIC})
            await settle()
            heard_in_process = dispatcher.seq - heard_listening
            await finish([pending])
            return heard_listening, heard_in_process
        finally:
            del notify._dispatchers[loop]

    assert run(scenario) == (0, 1)


def test_a_claim_that_fails_once_is_retried_on_a_new_connection(worker_user):
    failures = []

    def flaky(claim):
        def fail_once():
            if not failures:
                failures.append(1)
                raise OperationalError("server closed the connection unexpectedly")
            return claim()

        return fail_once

    async def scenario(dispatcher):
        [pending] = await start(dispatcher, [waiter(dispatcher, worker_user, "w", claim=flaky)])
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        await dispatcher.step()
        return task, await pending

    task, answered = run(scenario)
    assert failures == [1]
    assert [t["id"] for t in answered] == [task.id]


def test_a_waiter_whose_claims_fail_on_every_connection_keeps_waiting_for_the_next_round(
    worker_user,
):
    """The database was away for both attempts of a round: the request used to answer 503
    although nothing had been claimed; it keeps waiting, and the announced topic is not lost."""
    failures = []

    def away_twice(claim):
        def claim_when_back():
            if len(failures) < 2:
                failures.append(1)
                raise OperationalError("server closed the connection unexpectedly")
            return claim()

        return claim_when_back

    async def scenario(dispatcher):
        [pending] = await start(
            dispatcher, [waiter(dispatcher, worker_user, "w", claim=away_twice)]
        )
        task = await db(make_task)
        dispatcher.announce({TOPIC})
        with pytest.raises(OperationalError):  # the dispatcher's loop logs it and backs off
            await dispatcher.step()
        still_waiting = not pending.done()
        await dispatcher.step()  # the next round, without a new announcement
        return task, still_waiting, await asyncio.wait_for(pending, 5)

    task, still_waiting, answered = run(scenario)
    assert failures == [1, 1]
    assert still_waiting
    assert [t["id"] for t in answered] == [task.id]
