"""The platform's roles: the business's four, and the three that approve, moderate and sign off."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    EDITOR = "Editor"
    CAMPAIGN_MANAGER = "CampaignManager"
    CREATOR_ADMIN = "CreatorAdmin"
    FINANCE_VIEWER = "FinanceViewer"
    MODERATOR = "Moderator"
    LEGAL = "Legal"
    FINANCE_APPROVER = "FinanceApprover"


ALL_ROLES = frozenset(Role)


def parse_roles(value: object) -> frozenset[Role]:
    """The known roles in a claim value (a list, or a space- or comma-separated string); unknown names are ignored,
    so an issuer's other groups never grant anything here."""
    if isinstance(value, str):
        names = value.replace(",", " ").split()
    elif isinstance(value, list | tuple):
        names = [v for v in value if isinstance(v, str)]
    else:
        return frozenset()
    known = {r.value: r for r in Role}
    return frozenset(known[n] for n in names if n in known)


def role_named(name: str) -> Role:
    """The role spelled `name` (case-insensitive), or a ValueError listing the roles."""
    for role in Role:
        if role.value.lower() == name.strip().lower():
            return role
    raise ValueError(f"no role {name!r}: use one of {', '.join(r.value for r in Role)}")
