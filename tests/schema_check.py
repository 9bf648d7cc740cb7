"""Validate records against schemas/*.schema.json (draft 2020-12, formats checked).

`date-time` is checked by jsonschema through `rfc3339-validator` (a dev
dependency); the tests fail loudly if that checker is missing rather than
silently skipping formats.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def load(name: str) -> dict[str, Any]:
    """A schema by file name (`cart-event.schema.json`) or event name (`cart-event`)."""
    file = name if name.endswith(".schema.json") else f"{name}.schema.json"
    schema: dict[str, Any] = json.loads((SCHEMAS / file).read_text(encoding="utf-8"))
    return schema


def format_checker() -> FormatChecker:
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        raise RuntimeError("jsonschema cannot check date-time: install rfc3339-validator")
    return checker


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=format_checker())


def validate(name: str, record: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless `record` matches schema `name`."""
    validator(name).validate(record)
