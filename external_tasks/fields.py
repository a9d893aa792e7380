"""Serializer fields for request bodies, and the one way the three faces read a body.

A `BodySerializer` validates and documents a request body: each field refuses a wrong JSON
type, a value out of Java's range or a string longer than its column with a 400 that names the
field (never a 500), and reading a body answers the first such error as InvalidRequest, which
each face maps to its own error format. Camunda quotes field names in its messages ('workerId'
is required), Flowable does not (workerId is required): `quote_names` says which.
"""

from rest_framework import serializers
from rest_framework.fields import empty

from project.errors import InvalidRequest
from project.rest.dates import parse_iso_duration
from project.rest.parsers import json_body

# Strings stored in columns of this size: longer ones would fail on PostgreSQL with a 500 and
# be stored whole on SQLite, so both databases refuse them alike.
STRING_LIMITS = {"workerId": 255, "errorCode": 255}
JAVA_BITS = {"int": 31, "long": 63}


class BodySerializer(serializers.Serializer):
    """A request body: `read(request)` gives its validated values or raises InvalidRequest."""

    quote_names = True  # Camunda's habit; the Flowable faces' serializers say False
    blank_is_missing = False  # Flowable treats "" as an absent value

    @classmethod
    def read(cls, request) -> dict:
        return cls.validate_body(json_body(request))

    @classmethod
    def validate_body(cls, body) -> dict:
        serializer = cls(data=body)
        if not serializer.is_valid():
            raise InvalidRequest(_first_message(serializer.errors))
        return serializer.validated_data

    def to_internal_value(self, data):
        # Absent keys read as None, so callers see every field of the body.
        values = super().to_internal_value(data)
        return {name: values.get(name) for name in self.fields}


def _first_message(errors) -> str:
    while isinstance(errors, dict | list):
        errors = next(iter(errors.values())) if isinstance(errors, dict) else errors[0]
    return str(errors)


class BodyField:
    """Mixin: null and absence are one thing (the value None), "required" is our message."""

    def name(self) -> str:
        quoted = getattr(self.parent, "quote_names", True)
        return f"'{self.field_name}'" if quoted else self.field_name

    def missing(self, data) -> bool:
        blank = getattr(self.parent, "blank_is_missing", False) or self.required
        return data is empty or data is None or (blank and data == "")

    def validate_empty_values(self, data):
        if self.missing(data):
            if self.required:
                raise serializers.ValidationError(f"{self.name()} is required")
            return True, None
        return False, data

    def run_validation(self, data=empty):
        # Not DRF's: its blank and range checks would answer in DRF's words, before ours.
        is_empty, value = self.validate_empty_values(data)
        return value if is_empty else self.to_internal_value(data)


class Text(BodyField, serializers.CharField):
    """A JSON string, at most as long as its column (STRING_LIMITS)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", not kwargs["required"])
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(f"{self.name()} must be a string, got {data!r}")
        limit = STRING_LIMITS.get(self.field_name)
        if limit is not None and len(data) > limit:
            raise serializers.ValidationError(f"{self.name()} is longer than {limit} characters")
        return data


class JavaInteger(BodyField, serializers.IntegerField):
    """A JSON number that fits Java's int or long (`java_type`), at least `min_value`."""

    def __init__(self, java_type: str = "int", **kwargs):
        self.java_type = java_type
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", not kwargs["required"])
        bits = JAVA_BITS[java_type]
        kwargs.setdefault("max_value", 2**bits - 1)
        kwargs.setdefault("min_value", -(2**bits))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        name = self.name()
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError(
                f"{name} must be a number (java type {self.java_type}), got {data!r}"
            )
        bits = JAVA_BITS[self.java_type]
        if not -(2**bits) <= data < 2**bits:
            raise serializers.ValidationError(
                f"{name} is out of range for java type {self.java_type}"
            )
        if self.min_value is not None and data < self.min_value:
            raise serializers.ValidationError(
                f"{name} must be at least {self.min_value}, got {data}"
            )
        return data


class Flag(BodyField, serializers.BooleanField):
    """true or false; null or absent is false."""

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def validate_empty_values(self, data):
        if self.missing(data):
            return True, False
        return False, data

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"{self.name()} must be true or false, got {data!r}")
        return data


class IsoDuration(BodyField, serializers.CharField):
    """An ISO 8601 duration such as PT10M (Flowable's and the seed's), read as milliseconds."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", not kwargs["required"])
        kwargs.setdefault("help_text", "ISO 8601 duration, e.g. PT10M")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        name = self.name()
        if not isinstance(data, str):
            raise serializers.ValidationError(f"{name} must be an ISO 8601 duration such as PT10M")
        try:
            duration = parse_iso_duration(data, self.field_name)
        except InvalidRequest as error:
            raise serializers.ValidationError(error.message) from None
        milliseconds = int(duration.total_seconds() * 1000)
        if milliseconds < 0:
            raise serializers.ValidationError(f"{name} must not be negative")
        return milliseconds


class Passed(BodyField):
    """Mixin: documented by its DRF field, passed on as sent to the service function, which
    validates it (variables: project.variables)."""

    def to_internal_value(self, data):
        return data


class PassedDict(Passed, serializers.DictField):
    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, **kwargs)


class PassedList(Passed, serializers.ListField):
    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, **kwargs)
