"""Camunda typed variables: {"type": "String", "value": "x", "valueInfo": {}} in and out."""

import json
from collections.abc import Mapping

from project.errors import InvalidRequest
from project.rest.dates import parse_date

TYPES = {
    "string": "String",
    "boolean": "Boolean",
    "integer": "Integer",
    "short": "Short",
    "long": "Long",
    "double": "Double",
    "date": "Date",
    "json": "Json",
    "xml": "Xml",
    "object": "Object",
    "null": "Null",
    "bytes": "Bytes",
    "file": "File",
}


def infer_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if -(2**31) <= value < 2**31 else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, dict | list):
        return "Json"
    return "String"


def _check(name: str, type_name: str, value):
    """Validate a value against its declared type; JSON values stay JSON-serialisable."""
    if value is None or type_name in {"Null", "Object", "Bytes", "File"}:
        return value
    ok = {
        "String": lambda v: isinstance(v, str),
        "Xml": lambda v: isinstance(v, str),
        "Boolean": lambda v: isinstance(v, bool),
        "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Short": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "Date": lambda v: isinstance(v, str),
        "Json": lambda v: True,
    }[type_name]
    if not ok(value):
        raise InvalidRequest(
            f"Cannot convert value '{value}' of variable '{name}' to type {type_name}"
        )
    if type_name == "Date":
        parse_date(value, name)
    if type_name == "Json" and isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise InvalidRequest(f"Variable '{name}' of type Json is not valid JSON") from None
    return value


def from_request(variables) -> dict:
    """Normalise request variables to {name: {"type", "value", "valueInfo"}}; type may be
    missing (inferred from the JSON value); bad types or values raise InvalidRequest."""
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise InvalidRequest("'variables' must be a JSON object of name -> {value, type}")
    result = {}
    for name, variable in variables.items():
        if not isinstance(variable, Mapping):
            variable = {"value": variable}
        value = variable.get("value")
        declared = variable.get("type")
        if declared in (None, ""):
            type_name = infer_type(value)
        elif str(declared).lower() in TYPES:
            type_name = TYPES[str(declared).lower()]
        else:
            raise InvalidRequest(f"Unsupported value type '{declared}' of variable '{name}'")
        value_info = variable.get("valueInfo") or {}
        if not isinstance(value_info, Mapping):
            raise InvalidRequest(f"'valueInfo' of variable '{name}' must be an object")
        result[str(name)] = {
            "type": type_name,
            "value": _check(name, type_name, value),
            "valueInfo": dict(value_info),
        }
    return result


def to_response(variables: Mapping | None, names=None) -> dict:
    """Stored variables as Camunda returns them, optionally only the requested names."""
    variables = variables or {}
    if names is not None:
        wanted = set(names)
        variables = {k: v for k, v in variables.items() if k in wanted}
    return {
        name: {
            "type": v.get("type") or infer_type(v.get("value")),
            "value": v.get("value"),
            "valueInfo": v.get("valueInfo") or {},
        }
        for name, v in variables.items()
    }
