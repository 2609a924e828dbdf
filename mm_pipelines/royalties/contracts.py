"""The royalty catalog file (creators, payees, contracts, licenses): parsed and validated whole.

A catalog is a YAML document that Finance and the rights team keep in version control and load with
`mm royalties load FILE`. Nothing of a bad file is stored, and every error names the file, the line and
the field, because a contract typo is a payment dispute later. docs/royalties.md describes the format.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from mm_pipelines.events.contract import CURRENCIES
from mm_pipelines.royalties.payouts import iban_problem

KYC_STATUSES = ("verified", "pending", "rejected")
PAYOUT_METHODS = ("sepa", "manual")
BASES = ("net_sales", "attributed_revenue")
RATE_BASES = ("flat", "units", "revenue", "date")
LICENSE_ACTIONS = ("takedown", "renew")
HUNDRED = Decimal(100)
WORLDWIDE = "WW"

# Every key each mapping of the catalog may have, in the order docs/royalties.md lists them.
ROOT_KEYS = ("creators", "contracts", "licenses")
CREATOR_KEYS = ("id", "name", "payees")
PAYEE_KEYS = ("id", "name", "kyc", "payout", "threshold", "withholding_percent")
KYC_KEYS = ("status", "evidence")
PAYOUT_KEYS = ("method", "currency", "iban", "bic")
CONTRACT_KEYS = ("reference", "creator", "currency", "effective_from", "expires_on", "territories", "payees",
                 "cross_collateralized", "advances", "minimum_guarantees", "reserve", "rules")
SPLIT_KEYS = ("payee", "share")
ADVANCE_KEYS = ("payee", "amount", "paid_on")
GUARANTEE_KEYS = ("payee", "amount_per_period")
RESERVE_KEYS = ("percent", "release_after", "installments")
RULE_KEYS = ("id", "sku", "asset", "base", "attribution_model", "rate_percent", "tiers", "deduction_per_unit", "payees")
TIERS_KEYS = ("by", "steps")
STEP_KEYS = ("from", "rate_percent")
LICENSE_KEYS = ("asset", "licensor", "expires_on", "on_expiry")


class CatalogError(ValueError):
    """`file:line: field: what is wrong`: one line that says where to look and what to fix."""


@dataclass(frozen=True)
class Payee:
    payee_id: str
    creator_id: str
    name: str
    kyc_status: str
    kyc_evidence: str  # a pointer (case URI) to the KYC vendor's evidence, never the personal data itself
    payout_method: str
    currency: str
    iban: str
    bic: str
    threshold: Decimal
    withholding_rate: Decimal  # fraction 0..1


@dataclass(frozen=True)
class Creator:
    creator_id: str
    name: str


@dataclass(frozen=True)
class Split:
    payee_id: str
    share: Decimal  # fraction; a rule's splits sum to exactly 1


@dataclass(frozen=True)
class Tier:
    start: Decimal  # units, money (contract currency) or days since 1970-01-01, depending on the rule's rate basis
    rate: Decimal  # fraction 0..1


@dataclass(frozen=True)
class Rule:
    rule_id: str
    target_kind: str  # sku | asset
    target_id: str
    base: str
    attribution_model: str
    rate_basis: str
    tiers: tuple[Tier, ...]
    deduction_per_unit: Decimal
    splits: tuple[Split, ...]


@dataclass(frozen=True)
class Advance:
    payee_id: str
    amount: Decimal
    paid_on: date


@dataclass(frozen=True)
class Contract:
    reference: str
    creator_id: str
    currency: str
    effective_from: date
    effective_to: date  # the expiry date, inclusive
    territories: tuple[str, ...]
    cross_collateralized: bool
    minimum_guarantees: tuple[tuple[str, Decimal], ...]  # (payee, amount per period in the payee's currency)
    advances: tuple[Advance, ...]
    reserve_rate: Decimal
    reserve_release_after: int
    reserve_installments: int
    rules: tuple[Rule, ...]

    @cached_property
    def version(self) -> str:
        """Content hash: statements and ledger lines name the exact terms that produced them."""
        return _digest(self.document())

    def rule_version(self, rule: Rule) -> str:
        """Hash of what the ledger computes from: changing it reverses and re-posts the rule's lines."""
        return _digest([_rule_document(rule), self.currency, list(self.territories), str(self.effective_from), str(self.effective_to)])

    def account_id(self, payee_id: str) -> str:
        """Cross-collateralised contracts share one account per payee, so advances recoup across them."""
        return f"{payee_id}:xc:{self.creator_id}" if self.cross_collateralized else f"{payee_id}:{self.reference}"

    def document(self) -> dict:
        """The contract as JSON values (Decimals and dates as text), built by hand: asdict() was most of a
        50,000-contract snapshot."""
        return {
            "reference": self.reference, "creator_id": self.creator_id, "currency": self.currency,
            "effective_from": str(self.effective_from), "effective_to": str(self.effective_to),
            "territories": list(self.territories), "cross_collateralized": self.cross_collateralized,
            "minimum_guarantees": [[p, str(a)] for p, a in self.minimum_guarantees],
            "advances": [{"payee_id": a.payee_id, "amount": str(a.amount), "paid_on": str(a.paid_on)} for a in self.advances],
            "reserve_rate": str(self.reserve_rate), "reserve_release_after": self.reserve_release_after,
            "reserve_installments": self.reserve_installments, "rules": [_rule_document(r) for r in self.rules],
        }


def _rule_document(rule: Rule) -> dict:
    return {
        "rule_id": rule.rule_id, "target_kind": rule.target_kind, "target_id": rule.target_id, "base": rule.base,
        "attribution_model": rule.attribution_model, "rate_basis": rule.rate_basis,
        "tiers": [{"start": str(t.start), "rate": str(t.rate)} for t in rule.tiers],
        "deduction_per_unit": str(rule.deduction_per_unit),
        "splits": [{"payee_id": s.payee_id, "share": str(s.share)} for s in rule.splits],
    }


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class License:
    asset_id: str
    licensor: str
    expires_on: date
    on_expiry: str


@dataclass
class Catalog:
    creators: list[Creator] = field(default_factory=list)
    payees: list[Payee] = field(default_factory=list)
    contracts: list[Contract] = field(default_factory=list)
    licenses: list[License] = field(default_factory=list)


def contract_from_document(doc: dict) -> Contract:
    """Rebuild a stored contract (Contract.document) exactly, Decimals and dates included."""
    d = dict(doc)
    d["effective_from"] = date.fromisoformat(d["effective_from"])
    d["effective_to"] = date.fromisoformat(d["effective_to"])
    d["territories"] = tuple(d["territories"])
    d["minimum_guarantees"] = tuple((p, Decimal(a)) for p, a in d["minimum_guarantees"])
    d["advances"] = tuple(Advance(a["payee_id"], Decimal(a["amount"]), date.fromisoformat(a["paid_on"])) for a in d["advances"])
    d["reserve_rate"] = Decimal(d["reserve_rate"])
    d["rules"] = tuple(
        Rule(
            **{
                **r,
                "tiers": tuple(Tier(Decimal(t["start"]), Decimal(t["rate"])) for t in r["tiers"]),
                "deduction_per_unit": Decimal(r["deduction_per_unit"]),
                "splits": tuple(Split(s["payee_id"], Decimal(s["share"])) for s in r["splits"]),
            }
        )
        for r in d["rules"]
    )
    return Contract(**d)


# --- parsing with line numbers -------------------------------------------------------------------------


class _Node(dict):
    """A mapping that remembers the line of each key, so errors can point at it."""

    line: int = 0
    lines: dict


def _empty(line: int) -> _Node:
    node = _Node()
    node.line, node.lines = line, {}
    return node


class _RepeatedKey(Exception):
    """A key given twice in one mapping: YAML keeps the last silently, so the first value would be lost unseen."""


def _build(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = _Node()
        out.line = node.start_mark.line + 1
        out.lines = {}
        for k, v in node.value:
            if k.value in out.lines:
                raise _RepeatedKey(k.start_mark.line + 1, k.value, out.lines[k.value])
            out[k.value] = _build(v)
            out.lines[k.value] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v) for v in node.value]
    return node.value  # every scalar as written: no float ever comes out of a money field


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def error(self, node: _Node, key: str, message: str) -> CatalogError:
        line = node.lines.get(key, node.line) if isinstance(node, _Node) else 0
        return CatalogError(f"{self.path}:{line}: {key}: {message}")

    def known(self, node: _Node, allowed: tuple[str, ...], where: str) -> _Node:
        """Reject keys the format does not have: a misspelt optional key would silently take its default."""
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"valid keys are {', '.join(allowed)}"
                raise CatalogError(f"{self.path}:{node.lines[key]}: unknown key {key!r} in {where}: {hint}")
        return node

    def text(self, node: _Node, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = node.get(key, default)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise self.error(node, key, "is required")
        if not isinstance(value, str):
            raise self.error(node, key, "must be a text value")
        if choices and value not in choices:
            raise self.error(node, key, f"{value!r} is not one of {', '.join(choices)}")
        return value.strip()

    def decimal(self, node: _Node, key: str, default: str | None = None, low: Decimal | None = None, high: Decimal | None = None) -> Decimal:
        raw = node.get(key, default)
        if raw is None:
            raise self.error(node, key, "is required")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise self.error(node, key, f"{raw!r} is not a number") from None
        if not value.is_finite():
            raise self.error(node, key, f"{raw!r} is not a finite number")
        if low is not None and value < low or high is not None and value > high:
            raise self.error(node, key, f"{value} is outside {low if low is not None else '-inf'}–{high if high is not None else 'inf'}")
        return value

    def percent(self, node: _Node, key: str, default: str | None = None) -> Decimal:
        return self.decimal(node, key, default, Decimal(0), HUNDRED) / HUNDRED

    def day(self, node: _Node, key: str) -> date:
        raw = node.get(key)
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise self.error(node, key, f"{raw!r} is not a date YYYY-MM-DD") from None

    def currency(self, node: _Node, key: str) -> str:
        value = self.text(node, key)
        if value not in CURRENCIES:
            raise self.error(node, key, f"{value!r} is not an ISO 4217 currency code we accept")
        return value

    def whole(self, node: _Node, key: str, default: str, low: int) -> int:
        raw = str(node.get(key, default))
        if not raw.isdecimal() or int(raw) < low:
            raise self.error(node, key, f"{raw!r} must be a whole number >= {low}")
        return int(raw)

    def items(self, node: _Node, key: str, required: bool = False) -> list[_Node]:
        value = node.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, _Node) for v in value):
            raise self.error(node, key, "must be a list of mappings")
        if required and not value:
            raise self.error(node, key, "must have at least one entry")
        return value


def _label(kind: str, node: _Node, key: str, number: int) -> str:
    """How an error names a mapping: by its id when it has one, else by its position (1-based)."""
    value = node.get(key)
    return f"{kind} {value.strip()}" if isinstance(value, str) and value.strip() else f"{kind} {number}"


def parse_catalog(path: Path, text: str) -> Catalog:
    try:
        root = _build(yaml.compose(text)) if text.strip() else _Node()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise CatalogError(f"{path}:{mark.line + 1 if mark else 0}: not valid YAML: {getattr(e, 'problem', e)}") from None
    except _RepeatedKey as e:
        line, key, first = e.args
        raise CatalogError(f"{path}:{line}: {key}: appears twice in one mapping (first on line {first}): keep one") from None
    if not isinstance(root, _Node):
        raise CatalogError(f"{path}:1: the catalog must be a mapping with creators, contracts and licenses")
    r = _Reader(path)
    r.known(root, ROOT_KEYS, "the catalog")
    catalog = Catalog()
    for n, c in enumerate(r.items(root, "creators"), 1):
        r.known(c, CREATOR_KEYS, _label("creator", c, "id", n))
        creator = Creator(r.text(c, "id"), r.text(c, "name"))
        catalog.creators.append(creator)
        for m, p in enumerate(r.items(c, "payees", required=True), 1):
            catalog.payees.append(_payee(r, p, creator.creator_id, _label("payee", p, "id", m)))
    for n, c in enumerate(r.items(root, "contracts"), 1):
        catalog.contracts.append(_contract(r, c, _label("contract", c, "reference", n)))
    for n, lic in enumerate(r.items(root, "licenses"), 1):
        asset = lic.get("asset")
        r.known(lic, LICENSE_KEYS, f"license {n} ({asset})" if isinstance(asset, str) else f"license {n}")
        catalog.licenses.append(
            License(r.text(lic, "asset"), r.text(lic, "licensor"), r.day(lic, "expires_on"), r.text(lic, "on_expiry", "takedown", LICENSE_ACTIONS))
        )
    _check_references(r, root, catalog)
    return catalog


def _payee(r: _Reader, p: _Node, creator_id: str, where: str) -> Payee:
    r.known(p, PAYEE_KEYS, where)
    kyc = p.get("kyc")
    payout = p.get("payout")
    for key, value, allowed in (("kyc", kyc, KYC_KEYS), ("payout", payout, PAYOUT_KEYS)):
        if not isinstance(value, _Node):
            raise r.error(p, key, "is required (a mapping)")
        r.known(value, allowed, f"{key} of {where}")
    method = r.text(payout, "method", "sepa", PAYOUT_METHODS)
    iban = str(payout.get("iban") or "").replace(" ", "").upper()
    problem = iban_problem(iban) if method == "sepa" else None
    if problem:
        raise r.error(payout, "iban", problem)
    return Payee(
        payee_id=r.text(p, "id"),
        creator_id=creator_id,
        name=r.text(p, "name"),
        kyc_status=r.text(kyc, "status", None, KYC_STATUSES),
        kyc_evidence=r.text(kyc, "evidence"),
        payout_method=method,
        currency=r.currency(payout, "currency"),
        iban=iban,
        bic=str(payout.get("bic") or ""),
        threshold=r.decimal(p, "threshold", "0", low=Decimal(0)),
        withholding_rate=r.percent(p, "withholding_percent", "0"),
    )


def _contract(r: _Reader, c: _Node, where: str) -> Contract:
    r.known(c, CONTRACT_KEYS, where)
    effective_from, effective_to = r.day(c, "effective_from"), r.day(c, "expires_on")
    if effective_to < effective_from:
        raise r.error(c, "expires_on", f"{effective_to} is before effective_from {effective_from}")
    territories = c.get("territories", [WORLDWIDE])
    if not isinstance(territories, list) or not territories or not all(isinstance(t, str) and re.fullmatch(r"[A-Z]{2}", t) for t in territories):
        raise r.error(c, "territories", "must list ISO 3166 country codes (two capital letters) or WW for worldwide")
    splits = _splits(r, c, "payees", where)
    reserve = c.get("reserve") or _empty(c.line)
    if not isinstance(reserve, _Node):
        raise r.error(c, "reserve", "must be a mapping with percent, release_after and installments")
    r.known(reserve, RESERVE_KEYS, f"reserve of {where}")
    rules = tuple(_rule(r, rule, splits, f"{_label('rule', rule, 'id', n)} of {where}") for n, rule in enumerate(r.items(c, "rules", required=True), 1))
    seen: set[str] = set()
    for node, rule in zip(c["rules"], rules):
        if rule.rule_id in seen:
            raise r.error(node, "id", f"rule {rule.rule_id!r} appears twice in the contract")
        seen.add(rule.rule_id)
    payee_ids = {s.payee_id for s in splits} | {s.payee_id for rule in rules for s in rule.splits}
    guarantees = []
    for n, g in enumerate(r.items(c, "minimum_guarantees"), 1):
        r.known(g, GUARANTEE_KEYS, f"minimum guarantee {n} of {where}")
        guarantees.append((_member(r, g, "payee", payee_ids), r.decimal(g, "amount_per_period", low=Decimal(0))))
    advances = []
    for n, a in enumerate(r.items(c, "advances"), 1):
        r.known(a, ADVANCE_KEYS, f"advance {n} of {where}")
        advances.append(Advance(_member(r, a, "payee", payee_ids), r.decimal(a, "amount", low=Decimal(0)), r.day(a, "paid_on")))
    return Contract(
        reference=r.text(c, "reference"),
        creator_id=r.text(c, "creator"),
        currency=r.currency(c, "currency"),
        effective_from=effective_from,
        effective_to=effective_to,
        territories=tuple(sorted(territories)),
        cross_collateralized=bool(str(c.get("cross_collateralized", "false")).lower() in ("true", "yes", "1")),
        minimum_guarantees=tuple(guarantees),
        advances=tuple(advances),
        reserve_rate=r.percent(reserve, "percent", "0"),
        reserve_release_after=r.whole(reserve, "release_after", "1", 1),
        reserve_installments=r.whole(reserve, "installments", "1", 1),
        rules=rules,
    )


def _member(r: _Reader, node: _Node, key: str, allowed: set[str]) -> str:
    value = r.text(node, key)
    if value not in allowed:
        raise r.error(node, key, f"{value!r} is not one of the contract's payees ({', '.join(sorted(allowed))})")
    return value


def _splits(r: _Reader, node: _Node, key: str, where: str) -> tuple[Split, ...]:
    splits = []
    for n, s in enumerate(r.items(node, key), 1):
        r.known(s, SPLIT_KEYS, f"split {n} of {where}")
        share = r.decimal(s, "share", low=Decimal(0), high=HUNDRED)
        if share == 0:
            raise r.error(s, "share", "must be above 0 (leave the payee out instead)")
        splits.append(Split(r.text(s, "payee"), share / HUNDRED))
    if splits:
        total = sum(s.share for s in splits) * HUNDRED
        if total != HUNDRED:
            raise r.error(node, key, f"shares sum to {total.normalize():f}%, they must sum to exactly 100%")
        if len({s.payee_id for s in splits}) != len(splits):
            raise r.error(node, key, "a payee appears twice")
    return tuple(sorted(splits, key=lambda s: s.payee_id))


def _rule(r: _Reader, node: _Node, contract_splits: tuple[Split, ...], where: str) -> Rule:
    r.known(node, RULE_KEYS, where)
    has_sku, has_asset = "sku" in node, "asset" in node
    if has_sku == has_asset:
        raise r.error(node, "sku", "a rule needs exactly one of sku or asset")
    target_kind = "sku" if has_sku else "asset"
    base = r.text(node, "base", "net_sales" if has_sku else "attributed_revenue", BASES)
    if base == "net_sales" and not has_sku:
        raise r.error(node, "base", "net_sales needs a sku (use attributed_revenue for an asset)")
    if base == "attributed_revenue" and not has_asset:
        raise r.error(node, "base", "attributed_revenue needs an asset")
    splits = _splits(r, node, "payees", where) or contract_splits
    if not splits:
        raise r.error(node, "payees", "no payees: give payees with shares on the contract or the rule")
    model = r.text(node, "attribution_model", "linear") if base == "attributed_revenue" else ""
    if model:
        from mm_pipelines.attribution.config import MODELS

        if model not in MODELS:
            raise r.error(node, "attribution_model", f"{model!r} is not one of {', '.join(MODELS)}")
    tiers, basis = _tiers(r, node, where)
    deduction = r.decimal(node, "deduction_per_unit", "0", low=Decimal(0))
    if base == "attributed_revenue" and (basis == "units" or deduction):
        raise r.error(node, "tiers" if basis == "units" else "deduction_per_unit", "attributed revenue has no units: use revenue tiers and no per-unit deduction")
    return Rule(r.text(node, "id"), target_kind, r.text(node, target_kind), base, model, basis, tiers, deduction, splits)


def _tiers(r: _Reader, node: _Node, where: str) -> tuple[tuple[Tier, ...], str]:
    if "rate_percent" in node:
        return (Tier(Decimal(0), r.percent(node, "rate_percent")),), "flat"
    tiers = node.get("tiers")
    if not isinstance(tiers, _Node):
        raise r.error(node, "rate_percent", "is required (or tiers: {by: units|revenue|date, steps: [...]})")
    r.known(tiers, TIERS_KEYS, f"tiers of {where}")
    basis = r.text(tiers, "by", None, RATE_BASES[1:])
    steps = r.items(tiers, "steps", required=True)
    out = []
    for n, s in enumerate(steps, 1):
        r.known(s, STEP_KEYS, f"step {n} of {where}")
        if basis == "date":
            start = Decimal((r.day(s, "from") - date(1970, 1, 1)).days)
        else:
            start = r.decimal(s, "from", low=Decimal(0))
        out.append(Tier(start, r.percent(s, "rate_percent")))
    if out[0].start != 0 and basis != "date":
        raise r.error(steps[0], "from", "the first step must start at 0")
    if any(b.start <= a.start for a, b in zip(out, out[1:])):
        raise r.error(tiers, "steps", "steps must start at strictly increasing values")
    return tuple(out), basis


def _check_references(r: _Reader, root: _Node, catalog: Catalog) -> None:
    creators = {c.creator_id for c in catalog.creators}
    payees = {p.payee_id: p for p in catalog.payees}
    for kind, ids in (("creator", [c.creator_id for c in catalog.creators]), ("payee", list(payees)), ("contract", [c.reference for c in catalog.contracts])):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise CatalogError(f"{r.path}:{root.line}: {kind} id {dupes[0]!r} appears more than once")
    for node, contract in zip(root.get("contracts", []), catalog.contracts):
        if contract.creator_id not in creators:
            raise r.error(node, "creator", f"unknown creator {contract.creator_id!r}")
        for rule in contract.rules:
            for s in rule.splits:
                if s.payee_id not in payees:
                    raise r.error(node, "payees", f"unknown payee {s.payee_id!r} in rule {rule.rule_id!r}")
        for s in node.get("payees", []):  # the contract's own split also names who advances and guarantees go to
            if r.text(s, "payee") not in payees:
                raise r.error(node, "payees", f"unknown payee {r.text(s, 'payee')!r} in the contract's payees")
    problem = overlapping_contracts(catalog.contracts)
    if problem:
        a, b, target, payee = problem
        node = next(n for n, c in zip(root["contracts"], catalog.contracts) if c.reference == b)
        raise r.error(node, "effective_from", f"contract {b!r} overlaps {a!r} for {target} and payee {payee!r}: one contract per asset and payee at a time")


def overlapping_contracts(contracts: list[Contract]) -> tuple[str, str, str, str] | None:
    """(first, second, target, payee) for two contracts covering the same asset/SKU and payee on the same day."""
    spans: dict[tuple[str, str], list[tuple[date, date, str]]] = {}
    for c in contracts:
        for rule in c.rules:
            for s in rule.splits:
                spans.setdefault((f"{rule.target_kind} {rule.target_id}", s.payee_id), []).append((c.effective_from, c.effective_to, c.reference))
    for (target, payee), items in sorted(spans.items()):
        items.sort()
        for (_, end_a, ref_a), (start_b, _, ref_b) in zip(items, items[1:]):
            if start_b <= end_a and ref_a != ref_b:
                return ref_a, ref_b, target, payee
    return None
