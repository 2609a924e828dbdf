"""Moderation: the state machine's invariants (Hypothesis), the built-in scanner's findings, the webhook signature."""

from __future__ import annotations

import io
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mm_pipelines.errors import Conflict, Invalid, Unauthorized
from mm_pipelines.moderation import scanner, webhook
from mm_pipelines.moderation.states import PII, Action, State, next_state, publishable

pytestmark = pytest.mark.unit


def _walk(steps, categories):
    """Apply steps from a fresh upload, skipping the impossible ones; the states reached, with their actions."""
    state, trail = State.PENDING, []
    for action in steps:
        try:
            state = next_state(state, action, categories, reason="because")
        except Conflict:
            continue
        trail.append((action, state))
    return trail


@given(
    st.lists(st.sampled_from(list(Action)), max_size=30),
    st.sets(st.sampled_from(scanner.CATEGORIES)).map(frozenset),
)
def test_no_sequence_publishes_a_blocked_version_without_a_moderator_or_pii_without_legal(steps, categories):
    trail = _walk(steps, categories)
    for i, (action, state) in enumerate(trail):
        if not publishable(state):
            continue
        earlier = [a for a, _ in trail[: i + 1]]
        blocked_at = [j for j, (_, s) in enumerate(trail[:i]) if s is State.BLOCKED]
        if blocked_at:  # once blocked, only a Moderator's override or an appeal they approve clears it
            since = [a for a, _ in trail[blocked_at[-1] : i + 1]]
            assert Action.OVERRIDE in since or Action.APPROVE in since
        if PII in categories:  # whoever cleared it, Legal signs off what exposes personal data
            assert action is Action.LEGAL_SIGNOFF
        assert State.TAKEN_DOWN not in [s for _, s in trail[:i]]  # a takedown is final
        assert Action.SUBMIT in earlier


@given(st.lists(st.sampled_from(list(Action)), max_size=30))
def test_a_taken_down_version_never_changes_again(steps):
    state = State.TAKEN_DOWN
    for action in steps:
        with pytest.raises((Conflict, Invalid)):
            next_state(state, action, reason="x")


def test_decisions_that_need_a_reason_refuse_without_one():
    with pytest.raises(Invalid, match="needs a reason"):
        next_state(State.BLOCKED, Action.OVERRIDE, reason="  ")
    with pytest.raises(Conflict, match="possible now: appeal, override, takedown"):
        next_state(State.BLOCKED, Action.APPROVE)
    assert next_state(State.BLOCKED, Action.OVERRIDE, frozenset({PII}), reason="fair use") is State.AWAITING_LEGAL


# --- the built-in scanner ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to jane.doe@example.com today", {"email"}),
        ("IBAN DE89 3704 0044 0532 0130 00 please", {"iban"}),
        ("card 4111 1111 1111 1111 exp 12/30", {"card_number"}),
        ("call +44 20 7946 0958 now", {"phone"}),
        # Not PII: an order id that fails Luhn, a date, a price, an IBAN with a wrong check digit.
        ("order 4111 1111 1111 1112 on 2026-10-01 for 1,299.00", set()),
        ("IBAN DE88 3704 0044 0532 0130 00", set()),
    ],
)
def test_pii_patterns_find_what_they_should_and_nothing_else(text, kinds):
    assert {f["kind"] for f in scanner.pii_findings(text, "description")} == kinds


def test_evidence_masks_what_it_found():
    [finding] = scanner.pii_findings("jane.doe@example.com", "title")
    assert "jane.doe" not in finding["match"]


def _picture(seed: int, size=(64, 48)) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("L", (8, 6))
    image.putdata([rng.randrange(256) for _ in range(48)])
    return image.resize(size, Image.Resampling.BILINEAR).convert("RGB")


def _png(image: Image.Image, fmt="PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def test_a_resized_recompressed_copy_of_a_blocklisted_image_is_blocked_and_another_image_is_not():
    original = _picture(1)
    listed = [scanner.difference_hash(_png(original))]
    copy = _png(original.resize((200, 150), Image.Resampling.BICUBIC), "JPEG", quality=60)
    verdict = scanner.scan({"title": "x"}, copy, "image/jpeg", image_blocklist=listed)
    assert verdict.verdict == scanner.BLOCK and verdict.categories == ("copyright",)
    assert scanner.scan({"title": "x"}, _png(_picture(2)), "image/png", image_blocklist=listed).verdict == scanner.PASS


def test_blocked_terms_block_as_whole_words_and_pii_quarantines():
    assert scanner.scan({"title": "Free SCAMCOIN offer"}, b"", "", ["scamcoin"]).verdict == scanner.BLOCK
    assert scanner.scan({"title": "scamcoinage history"}, b"", "", ["scamcoin"]).verdict == scanner.PASS
    found = scanner.scan({"title": "ok"}, b"reach me at +1 415 555 2671", "text/plain")
    assert (found.verdict, found.categories) == (scanner.QUARANTINE, ("pii",))
    both = scanner.scan({"title": "scamcoin"}, b"a@b.io", "text/plain", ["scamcoin"])
    assert (both.verdict, both.categories) == (scanner.BLOCK, ("pii", "policy"))


def test_an_image_pillow_cannot_read_goes_to_a_person():
    verdict = scanner.scan({}, b"\x89PNG\r\n\x1a\nnot really", "image/png")
    assert verdict.verdict == scanner.QUARANTINE


def test_the_blocklist_file_allows_comments():
    assert scanner.parse_blocklist("# licensed stock\nffee00aa11223344  # from case 12\n\n") == [0xFFEE00AA11223344]


# --- the webhook signature -------------------------------------------------------------------------------

SECRET = b"whsec-test"
BODY = json.dumps({"delivery_id": "d1", "scan_id": "s1", "verdict": "pass", "categories": []}).encode()


def test_a_signed_fresh_delivery_verifies():
    header = webhook.signature_header(SECRET, BODY, timestamp=1_000_000)
    assert webhook.verify(SECRET, header, BODY, 300, now=1_000_100).delivery_id == "d1"
    rolled = f"t=1000000,v1={'0' * 64},v1={webhook.signature(SECRET, 1_000_000, BODY)}"
    assert webhook.verify(SECRET, rolled, BODY, 300, now=1_000_000).scan_id == "s1"


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, BODY, 1_000_000, "no X-SentinelNet-Signature"),
        ("v1=abc", BODY, 1_000_000, "no timestamp"),
        (webhook.signature_header(b"other", BODY, 1_000_000), BODY, 1_000_000, "does not verify"),
        (webhook.signature_header(SECRET, BODY, 1_000_000), BODY.replace(b"pass", b"block"), 1_000_000, "not verify"),
        (webhook.signature_header(SECRET, BODY, 1_000_000), BODY, 1_000_301, "possible replay"),
        (webhook.signature_header(SECRET, BODY, 1_000_400), BODY, 1_000_000, "possible replay"),
    ],
    ids=["missing", "no-timestamp", "wrong-secret", "tampered-body", "stale", "from-the-future"],
)
def test_unsigned_tampered_and_stale_deliveries_are_refused(header, body, now, message):
    with pytest.raises(Unauthorized, match=message):
        webhook.verify(SECRET, header, body, 300, now=now)


def test_a_signed_delivery_with_a_bad_body_says_which_field():
    body = json.dumps({"delivery_id": "d1", "scan_id": "s1", "verdict": "maybe"}).encode()
    with pytest.raises(Invalid, match="verdict"):
        webhook.verify(SECRET, webhook.signature_header(SECRET, body), body, 300)
