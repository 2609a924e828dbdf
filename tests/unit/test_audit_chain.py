"""The audit chain's hashing: every field of a record and its link to the previous one are covered (Hypothesis)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm_pipelines.audit.chain import GENESIS, AuditRecord, chained, content_digest, record_hash

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 4, 8, 0, 0, 123456, tzinfo=UTC)
FIELDS = {
    "actor": "alice",
    "action": "asset.create",
    "obj": "asset:a1",
    "details": {"title": "Éclair"},
    "role": "Editor",
    "at": AT,
    "before": None,
    "after": "ab" * 32,
}
CHANGED = {
    "actor": "mallory",
    "action": "asset.delete",
    "obj": "asset:a2",
    "details": {"title": "Eclair"},
    "role": "Moderator",
    "at": AT.replace(microsecond=123457),
    "before": "cd" * 32,
    "after": None,
}


def _hash(prev: str = GENESIS, **changes) -> str:
    f = FIELDS | changes
    positional = (f.pop("actor"), f.pop("action"), f.pop("obj"), f.pop("details"))
    return record_hash(3, prev, *positional, **f)


def test_the_link_is_the_sha256_of_the_previous_hash_and_the_content_digest_as_postgres_computes_it():
    content = content_digest(
        "alice", "asset.create", "asset:a1", {"title": "Éclair"}, role="Editor", at=AT, before=None, after="ab" * 32
    )
    assert _hash() == chained(GENESIS, content) == hashlib.sha256((GENESIS + content).encode()).hexdigest()


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_change_to_any_field_changes_the_hash(field):
    assert _hash(**{field: CHANGED[field]}) != _hash()


@given(st.lists(st.text(max_size=20), min_size=2, max_size=6))
def test_any_change_to_one_record_or_the_order_breaks_every_link_after_it(actors):
    def links(names):
        prev, out = GENESIS, []
        for name in names:
            prev = _hash(prev, actor=name)
            out.append(prev)
        return out

    original = links(actors)
    edited = links(["⚠" + actors[0], *actors[1:]])
    assert all(a != b for a, b in zip(original, edited, strict=True))
    swapped = [actors[1], actors[0], *actors[2:]]
    if swapped != actors:
        assert links(swapped)[-1] != original[-1]


def test_a_record_recomputes_its_own_hash_and_any_edit_shows():
    digest = _hash()
    record = AuditRecord(
        1, AT, "alice", "Editor", "asset.create", "asset:a1", {"title": "Éclair"}, None, "ab" * 32, GENESIS, digest, 3
    )
    assert record.recomputed_hash() == digest
    assert AuditRecord(**{**record.__dict__, "details": {"title": "Eclair"}}).recomputed_hash() != digest
