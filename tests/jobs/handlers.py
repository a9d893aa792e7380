"""Job handlers the job API tests run through POST /job/{id}/execute."""

CALLS = []


def succeed(*args, **kwargs):
    CALLS.append((args, kwargs))
    return {"args": list(args), "kwargs": kwargs}


def explode(*args, **kwargs):
    raise ValueError("the printer is on fire")


def stop_executor(*args, **kwargs):
    """Ask the executor running this job to stop, as `kill -TERM` would."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)
