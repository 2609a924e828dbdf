"""The shared mapper from pydantic errors to what a user can fix: the key, the place and the message."""

from typing import Annotated

import pytest
from pydantic import BeforeValidator, ValidationError, model_validator

from mm_pipelines.validation import Problem, Record, first_problem, invalid, nearest_key

pytestmark = pytest.mark.unit


def _positive(value):
    if int(value) <= 0:
        raise invalid(f"{value!r} must be above 0")
    return int(value)


class Item(Record):
    count: Annotated[int, BeforeValidator(_positive)]
    tags: list[str] = []


class Basket(Record):
    owner: str
    items: list[Item] = []

    @model_validator(mode="after")
    def _one_owner_item(self):
        if len(self.items) > 2:
            raise invalid("at most 2 items", "items")
        if self.items and self.items[-1].count > 9:
            raise invalid("the last item holds at most 9", "count", ("items", len(self.items) - 1))
        return self


def problem(data) -> Problem:
    with pytest.raises(ValidationError) as info:
        Basket.model_validate(data)
    return first_problem(info.value)


def test_a_domain_rule_names_its_field_and_the_mapping_it_is_in():
    got = problem({"owner": "a", "items": [{"count": 1}, {"count": "0"}]})
    assert got == Problem(("items", 1), "count", "'0' must be above 0")


def test_a_rule_of_a_whole_mapping_points_at_the_key_it_is_about():
    assert problem({"owner": "a", "items": [{"count": 1}] * 3}) == Problem((), "items", "at most 2 items")
    got = problem({"owner": "a", "items": [{"count": 1}, {"count": 10}]})
    assert got == Problem(("items", 1), "count", "the last item holds at most 9")


def test_pydantic_own_errors_read_as_the_rest_of_a_line():
    assert problem({"items": []}) == Problem((), "owner", "is required")
    got = problem({"owner": "a", "items": [{"count": 1, "tags": ["x", 5]}]})
    assert (got.loc, got.field) == (("items", 0), "tags") and got.message.startswith("input should be a valid string")


def test_an_unknown_key_is_reported_first_with_the_nearest_valid_key():
    got = problem({"owner": "a", "items": [{"count": 0, "cuont": 1}]})
    assert got == Problem(("items", 0), "cuont", "unknown key 'cuont'", unknown_key=True, hint="did you mean 'count'?")
    assert nearest_key("colour", ["count", "tags"]) == "valid keys are count, tags"
