"""The moderation state of an asset version and the only ways it may change.

    pending ─submit→ scanning ─verdict→ passed (awaiting_legal when PII was found) | quarantined | blocked
    quarantined | appealed ─approve→ passed (awaiting_legal when PII was found) ; ─block→ blocked
    blocked ─override (reason)→ passed (awaiting_legal when PII) ; blocked ─appeal (reason)→ appealed
    awaiting_legal ─legal_signoff→ passed ; ─block→ blocked
    any but taken_down ─takedown (reason)→ taken_down
Only `passed` may be published.
"""

from __future__ import annotations

from enum import StrEnum

from mm_pipelines.errors import Conflict, Invalid
from mm_pipelines.identity.roles import Role


class State(StrEnum):
    PENDING = "pending"
    SCANNING = "scanning"
    PASSED = "passed"
    QUARANTINED = "quarantined"
    BLOCKED = "blocked"
    APPEALED = "appealed"
    AWAITING_LEGAL = "awaiting_legal"
    TAKEN_DOWN = "taken_down"


class Action(StrEnum):
    SUBMIT = "submit"
    VERDICT_PASS = "verdict_pass"
    VERDICT_QUARANTINE = "verdict_quarantine"
    VERDICT_BLOCK = "verdict_block"
    APPROVE = "approve"
    BLOCK = "block"
    OVERRIDE = "override"
    APPEAL = "appeal"
    LEGAL_SIGNOFF = "legal_signoff"
    TAKEDOWN = "takedown"


REVIEW_QUEUE = (State.QUARANTINED, State.APPEALED, State.AWAITING_LEGAL)
PII = "pii"
# Who may take each human decision (the API routes declare the same roles).
DECIDERS: dict[Action, frozenset[Role]] = {
    Action.APPROVE: frozenset({Role.MODERATOR}),
    Action.BLOCK: frozenset({Role.MODERATOR}),
    Action.OVERRIDE: frozenset({Role.MODERATOR}),
    Action.APPEAL: frozenset({Role.EDITOR, Role.CREATOR_ADMIN}),
    Action.LEGAL_SIGNOFF: frozenset({Role.LEGAL}),
    Action.TAKEDOWN: frozenset({Role.MODERATOR, Role.LEGAL}),
}
NEEDS_REASON = frozenset({Action.OVERRIDE, Action.APPEAL, Action.TAKEDOWN, Action.BLOCK})

_FROM: dict[Action, tuple[State, ...]] = {
    Action.SUBMIT: (State.PENDING,),
    Action.VERDICT_PASS: (State.SCANNING,),
    Action.VERDICT_QUARANTINE: (State.SCANNING,),
    Action.VERDICT_BLOCK: (State.SCANNING,),
    Action.APPROVE: (State.QUARANTINED, State.APPEALED),
    Action.BLOCK: (State.QUARANTINED, State.APPEALED, State.AWAITING_LEGAL),
    Action.OVERRIDE: (State.BLOCKED,),
    Action.APPEAL: (State.BLOCKED,),
    Action.LEGAL_SIGNOFF: (State.AWAITING_LEGAL,),
    Action.TAKEDOWN: tuple(s for s in State if s is not State.TAKEN_DOWN),
}


def next_state(current: State, action: Action, categories: frozenset[str] = frozenset(), reason: str = "") -> State:
    """The state after `action`, or Conflict naming what is possible instead."""
    if action in NEEDS_REASON and not reason.strip():
        raise Invalid(f"a {action.value} needs a reason: it is recorded in the audit trail and shown to the creator")
    if current not in _FROM[action]:
        possible = sorted(a.value for a, sources in _FROM.items() if current in sources and a in DECIDERS)
        raise Conflict(
            f"cannot {action.value} a version that is {current.value}"
            + (f": possible now: {', '.join(possible)}" if possible else "")
        )
    if action is Action.SUBMIT:
        return State.SCANNING
    if action is Action.VERDICT_QUARANTINE:
        return State.QUARANTINED
    if action in (Action.VERDICT_BLOCK, Action.BLOCK):
        return State.BLOCKED
    if action in (Action.VERDICT_PASS, Action.APPROVE, Action.OVERRIDE):
        return State.AWAITING_LEGAL if PII in categories else State.PASSED
    if action is Action.APPEAL:
        return State.APPEALED
    if action is Action.LEGAL_SIGNOFF:
        return State.PASSED
    return State.TAKEN_DOWN


def publishable(state: State) -> bool:
    return state is State.PASSED
