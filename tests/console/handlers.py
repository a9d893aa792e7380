"""Job handlers for console tests (dotted paths stored on jobs)."""


def succeed(*args, **kwargs):
    return sum(args)


def fail(*args, **kwargs):
    raise ValueError("handler failed on purpose")
