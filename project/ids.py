import uuid


def new_id() -> str:
    """Primary keys are UUID text, so Camunda-style ids like "aJobId" are valid values too."""
    return str(uuid.uuid4())
