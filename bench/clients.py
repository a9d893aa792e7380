"""HTTP clients of the server under test: Camunda-style Basic sessions and the console's login.

aiohttp (and yarl, which comes with it) is the optional `bench` extra: it is imported where a
client is made, so that `run.py --help` and the plan's tests run without it.
"""

import asyncio
import base64

from bench.common import ADMIN, PASSWORD, WORKER


def basic(user=WORKER) -> dict:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def client_session(user=WORKER, limit=100):
    """An HTTP client sending Basic credentials on every request, as Camunda clients do."""
    import aiohttp  # optional extra, see the module docstring

    return aiohttp.ClientSession(
        headers=basic(user),
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=None),
    )


def console_session(time_limit=True):
    """A cookie session for the console. The jar accepts the cookies of an IP address
    (127.0.0.1), which aiohttp's default jar drops; without `time_limit` for a download that
    may take longer than aiohttp's default of 5 minutes in all."""
    import aiohttp  # optional extra, see the module docstring

    options = {} if time_limit else {"timeout": aiohttp.ClientTimeout(total=None)}
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **options)


async def console_login(session, base, username=ADMIN):
    """Session login through the login form, as an operator's browser does."""
    from yarl import URL  # comes with aiohttp, see the module docstring

    async with session.get(base + "/login/") as response:
        await response.read()
    token = session.cookie_jar.filter_cookies(URL(base)).get("csrftoken")
    async with session.post(
        base + "/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": token.value if token else "",
        },
        headers={"Referer": base + "/login/"},
        allow_redirects=False,
    ) as response:
        await response.read()
        if response.status not in (302, 303):
            raise RuntimeError(f"console login failed: {response.status}")
    return session.cookie_jar.filter_cookies(URL(base))["csrftoken"].value


async def warm_up(base, connections: int = 16):
    """Verify each account's Basic credentials in every server process (PBKDF2, then cached by
    the process), so the timed runs measure the steady state a long-running worker sees. The
    processes share one listening socket and a connection goes to whichever accepts it: many
    concurrent new connections reach them all (one warmed process left the other to verify
    the credentials during the timed run: 2 s for the first fetches)."""
    body = {
        "workerId": "warm-up",
        "maxTasks": 1,
        "topics": [{"topicName": "bench-warm-up", "lockDuration": 1000}],
    }

    async def one():
        url = base + "/engine-rest/version"
        async with client_session(ADMIN) as session, session.get(url) as response:
            await response.read()
        url = base + "/engine-rest/external-task/fetchAndLock"
        async with client_session(WORKER) as session, session.post(url, json=body) as response:
            await response.read()

    for _ in range(2):
        await asyncio.gather(*(one() for _ in range(connections)))
