"""Validation of input files (catalog entries, spend and sales rows) with pydantic models, and the one place
that turns pydantic's first error into what a user can act on: the field, the value and what to fix.

Each loader knows where a row or mapping sits in its file (a CSV line, a YAML key's line) and formats the
`file:line: field: what is wrong` message from the Problem; the domain rules live in the models' validators
and raise `invalid(...)` with the message the user reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

UNKNOWN_KEY = "unknown_key"


def invalid(message: str, field: str | None = None, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A failed domain rule with the message the user reads. A rule of a whole mapping names the key it is
    about (`field`), in a mapping inside it when `at` is that mapping's place (e.g. ("advances", 0))."""
    return PydanticCustomError("invalid", "{message}", {"message": message, "field": field, "at": at})


def nearest_key(key: str, allowed: Sequence[str]) -> str:
    """How to fix an unknown key: the closest valid one, or every valid one when none is close."""
    close = difflib.get_close_matches(key, allowed, n=1)
    return f"did you mean {close[0]!r}?" if close else f"valid keys are {', '.join(allowed)}"


class Record(BaseModel):
    """A row or mapping of an input file. A key the format does not have is an error (a misspelt optional
    key would silently take its default), reported before anything else of the mapping."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = [f.alias or name for name, f in cls.model_fields.items()]
            for key in data:
                if key not in allowed:
                    hint = nearest_key(key, allowed)
                    raise PydanticCustomError(UNKNOWN_KEY, "unknown key {key!r}: {hint}", {"key": key, "hint": hint})
        return data


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with an input: where (`loc`, keys and list positions as pydantic gives them, down
    to the mapping the error is in), the key it is about, the message, and whether the key is unknown."""

    loc: tuple[str | int, ...]
    field: str
    message: str
    unknown_key: bool = False
    hint: str = ""  # for an unknown key: the nearest valid key


def first_problem(error: ValidationError) -> Problem:
    e = error.errors(include_url=False)[0]
    loc, ctx = tuple(e["loc"]), e.get("ctx") or {}
    if e["type"] == UNKNOWN_KEY:
        return Problem(loc, ctx["key"], f"unknown key {ctx['key']!r}", unknown_key=True, hint=ctx["hint"])
    if e["type"] == "invalid" and ctx.get("field"):
        return Problem(loc + tuple(ctx["at"]), ctx["field"], ctx["message"])
    # A field's own error: the key is the last name in its location (after it, list positions inside the value).
    keys = [i for i, part in enumerate(loc) if isinstance(part, str)]
    at = keys[-1] if keys else -1
    field = str(loc[at]) if keys else ""
    if e["type"] == "invalid":
        message = ctx["message"]
    else:  # pydantic's own wording, as the rest of the line: "is required", "input should be ..."
        message = "is required" if e["type"] == "missing" else e["msg"][:1].lower() + e["msg"][1:]
    return Problem(loc[:at] if keys else loc, field, message)


def csv_rows(model: type[Record], path, records, error: type[Exception]) -> list:
    """Each (line, record) of a CSV report validated as `model` (its `line` field gets the line; columns the
    model does not know are ignored), or `error`: `file:line: field 'x' what to fix (got 'value')`."""
    columns = [f.alias or name for name, f in model.model_fields.items() if name != "line"]
    out = []
    for line, record in records:
        try:
            out.append(model.model_validate({"line": line, **{c: record.get(c) for c in columns}}))
        except ValidationError as e:
            p = first_problem(e)
            raise error(f"{path}:{line}: field {p.field!r} {p.message} (got {record.get(p.field)!r})") from None
    return out
