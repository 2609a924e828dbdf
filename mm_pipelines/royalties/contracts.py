"""The royalty catalog file (creators, payees, contracts, licenses): parsed and validated whole.

A catalog is a YAML document that Finance and the rights team keep in version control and load with
`mm royalties load FILE`. Nothing of a bad file is stored, and every error names the file, the line and
the field, because a contract typo is a payment dispute later. docs/royalties.md describes the format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mm_pipelines.events.event_schema import CURRENCIES
from mm_pipelines.royalties.payouts import iban_problem
from mm_pipelines.validation import Problem, Record, first_problem, invalid

KYC_STATUSES = ("verified", "pending", "rejected")
PAYOUT_METHODS = ("sepa", "manual")
BASES = ("net_sales", "attributed_revenue")
RATE_BASES = ("flat", "units", "revenue", "date")
LICENSE_ACTIONS = ("takedown", "renew")
HUNDRED = Decimal(100)
WORLDWIDE = "WW"


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
        return _digest(
            [
                _rule_document(rule),
                self.currency,
                list(self.territories),
                str(self.effective_from),
                str(self.effective_to),
            ]
        )

    def account_id(self, payee_id: str) -> str:
        """Cross-collateralised contracts share one account per payee, so advances recoup across them."""
        return f"{payee_id}:xc:{self.creator_id}" if self.cross_collateralized else f"{payee_id}:{self.reference}"

    def document(self) -> dict:
        """The contract as JSON values (Decimals and dates as text), built by hand: asdict() was most of a
        50,000-contract snapshot."""
        return {
            "reference": self.reference,
            "creator_id": self.creator_id,
            "currency": self.currency,
            "effective_from": str(self.effective_from),
            "effective_to": str(self.effective_to),
            "territories": list(self.territories),
            "cross_collateralized": self.cross_collateralized,
            "minimum_guarantees": [[p, str(a)] for p, a in self.minimum_guarantees],
            "advances": [
                {"payee_id": a.payee_id, "amount": str(a.amount), "paid_on": str(a.paid_on)} for a in self.advances
            ],
            "reserve_rate": str(self.reserve_rate),
            "reserve_release_after": self.reserve_release_after,
            "reserve_installments": self.reserve_installments,
            "rules": [_rule_document(r) for r in self.rules],
        }


def _rule_document(rule: Rule) -> dict:
    return {
        "rule_id": rule.rule_id,
        "target_kind": rule.target_kind,
        "target_id": rule.target_id,
        "base": rule.base,
        "attribution_model": rule.attribution_model,
        "rate_basis": rule.rate_basis,
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
    d["advances"] = tuple(
        Advance(a["payee_id"], Decimal(a["amount"]), date.fromisoformat(a["paid_on"])) for a in d["advances"]
    )
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


# --- the file's entries: pydantic models, one per kind of mapping ----------------------------------------------
# Every scalar reaches them as the text written (no float ever comes out of a money field); each validator
# raises the message the user reads, and parse_catalog adds the file and the line.


def _text(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise invalid("is required")
    if not isinstance(value, str):
        raise invalid("must be a text value")
    return value.strip()


def _choice(choices: tuple[str, ...]) -> BeforeValidator:
    def check(value: Any) -> str:
        text = _text(value)
        if value not in choices:
            raise invalid(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return BeforeValidator(check)


def _number(raw: Any, low: Decimal | None = None, high: Decimal | None = None) -> Decimal:
    if raw is None:
        raise invalid("is required")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise invalid(f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise invalid(f"{raw!r} is not a finite number")
    if low is not None and value < low or high is not None and value > high:
        raise invalid(f"{value} is outside {low if low is not None else '-inf'}–{high if high is not None else 'inf'}")
    return value


def _day(raw: Any) -> date:
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise invalid(f"{raw!r} is not a date YYYY-MM-DD") from None


def _currency(value: Any) -> str:
    text = _text(value)
    if text not in CURRENCIES:
        raise invalid(f"{text!r} is not an ISO 4217 currency code we accept")
    return text


def _whole(raw: Any) -> int:
    if not str(raw).isdecimal() or int(str(raw)) < 1:
        raise invalid(f"{str(raw)!r} must be a whole number >= 1")
    return int(str(raw))


def _mappings(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid("must be a list of mappings")
    return value


def _some_mappings(value: Any) -> list:
    if not _mappings(value):
        raise invalid("must have at least one entry")
    return value


def _territories(value: Any) -> tuple[str, ...]:
    codes = value if isinstance(value, list) else []
    if not codes or not all(isinstance(t, str) and re.fullmatch(r"[A-Z]{2}", t) for t in codes):
        raise invalid("must list ISO 3166 country codes (two capital letters) or WW for worldwide")
    return tuple(sorted(value))


def _percent(raw: Any) -> Decimal:
    return _number(raw, Decimal(0), HUNDRED) / HUNDRED


def _optional(check):
    """`check` for a key that may be left out (None when it is)."""
    return lambda value: None if value is None else check(value)


Text = Annotated[str, BeforeValidator(_text)]
Day = Annotated[date, BeforeValidator(_day)]
Currency = Annotated[str, BeforeValidator(_currency)]
Amount = Annotated[Decimal, BeforeValidator(lambda raw: _number(raw, low=Decimal(0)))]
Percent = Annotated[Decimal, BeforeValidator(_percent)]  # as a fraction 0..1
Whole = Annotated[int, BeforeValidator(_whole)]
Mappings = BeforeValidator(_mappings)
SomeMappings = BeforeValidator(_some_mappings)


class KycEntry(Record):
    status: Annotated[str, _choice(KYC_STATUSES)]
    evidence: Text


class PayoutEntry(Record):
    method: Annotated[str, _choice(PAYOUT_METHODS)] = "sepa"
    currency: Currency
    iban: Annotated[str, BeforeValidator(lambda raw: str(raw or "").replace(" ", "").upper())] = ""
    bic: Annotated[str, BeforeValidator(lambda raw: str(raw or ""))] = ""

    @model_validator(mode="after")
    def _bank_details(self) -> PayoutEntry:
        problem = iban_problem(self.iban) if self.method == "sepa" else None
        if problem:
            raise invalid(problem, "iban")
        return self


def _required_mapping(value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid("is required (a mapping)")
    return value


class PayeeEntry(Record):
    id: Text
    name: Text
    kyc: Annotated[KycEntry, BeforeValidator(_required_mapping)] = Field(default=None, validate_default=True)
    payout: Annotated[PayoutEntry, BeforeValidator(_required_mapping)] = Field(default=None, validate_default=True)
    threshold: Amount = Decimal(0)
    withholding_percent: Percent = Decimal(0)

    def payee(self, creator_id: str) -> Payee:
        kyc, payout = self.kyc, self.payout
        return Payee(
            self.id,
            creator_id,
            self.name,
            kyc.status,
            kyc.evidence,
            payout.method,
            payout.currency,
            payout.iban,
            payout.bic,
            self.threshold,
            self.withholding_percent,
        )


class CreatorEntry(Record):
    id: Text
    name: Text
    payees: Annotated[list[PayeeEntry], SomeMappings] = Field(default=[], validate_default=True)


class SplitEntry(Record):
    payee: Text
    share: Annotated[Decimal, BeforeValidator(lambda raw: _number(raw, Decimal(0), HUNDRED))]

    @field_validator("share")
    @classmethod
    def _above_zero(cls, share: Decimal) -> Decimal:
        if share == 0:
            raise invalid("must be above 0 (leave the payee out instead)")
        return share


def _split(entries: list[SplitEntry]) -> tuple[Split, ...]:
    """A split's shares as fractions, by payee; they sum to exactly 100% and name each payee once."""
    if entries:
        total = sum(s.share for s in entries)
        if total != HUNDRED:
            raise invalid(f"shares sum to {total.normalize():f}%, they must sum to exactly 100%")
        if len({s.payee for s in entries}) != len(entries):
            raise invalid("a payee appears twice")
    return tuple(sorted((Split(s.payee, s.share / HUNDRED) for s in entries), key=lambda s: s.payee_id))


class StepEntry(Record):
    start: Any = Field(alias="from")  # units, money or a date: the tiers' `by` says which
    rate_percent: Percent


class TiersEntry(Record):
    by: Annotated[str, _choice(RATE_BASES[1:])]
    steps: Annotated[list[StepEntry], SomeMappings] = Field(default=[], validate_default=True)

    def tiers(self) -> tuple[Tier, ...]:
        out = []
        for n, step in enumerate(self.steps):
            try:
                if self.by == "date":
                    start = Decimal((_day(step.start) - date(1970, 1, 1)).days)
                else:
                    start = _number(step.start, low=Decimal(0))
            except PydanticCustomError as e:
                raise invalid(e.context["message"], "from", ("steps", n)) from None
            out.append(Tier(start, step.rate_percent))
        if out[0].start != 0 and self.by != "date":
            raise invalid("the first step must start at 0", "from", ("steps", 0))
        if any(b.start <= a.start for a, b in zip(out, out[1:])):
            raise invalid("steps must start at strictly increasing values", "steps")
        return tuple(out)


class RuleEntry(Record):
    id: Text
    sku: Annotated[str | None, BeforeValidator(_optional(_text))] = None
    asset: Annotated[str | None, BeforeValidator(_optional(_text))] = None
    base: Annotated[str | None, BeforeValidator(_optional(_choice(BASES).func))] = None
    attribution_model: Any = None
    rate_percent: Annotated[Decimal | None, BeforeValidator(_optional(_percent))] = None
    tiers: Any = None
    deduction_per_unit: Amount = Decimal(0)
    payees: Annotated[list[SplitEntry], Mappings] = []

    def rule(self, contract_splits: tuple[Split, ...]) -> Rule:
        """The rule as the ledger computes it: a rule without its own split takes the contract's."""
        if (self.sku is None) == (self.asset is None):
            raise invalid("a rule needs exactly one of sku or asset", "sku")
        kind = "sku" if self.sku is not None else "asset"
        base = self.base or ("net_sales" if kind == "sku" else "attributed_revenue")
        if base == "net_sales" and kind != "sku":
            raise invalid("net_sales needs a sku (use attributed_revenue for an asset)", "base")
        if base == "attributed_revenue" and kind != "asset":
            raise invalid("attributed_revenue needs an asset", "base")
        try:
            splits = _split(self.payees) or contract_splits
        except PydanticCustomError as e:
            raise invalid(e.context["message"], "payees") from None
        if not splits:
            raise invalid("no payees: give payees with shares on the contract or the rule", "payees")
        model = ""
        if base == "attributed_revenue":
            from mm_pipelines.attribution.config import MODELS

            try:
                model = _text("linear" if self.attribution_model is None else self.attribution_model)
            except PydanticCustomError as e:
                raise invalid(e.context["message"], "attribution_model") from None
            if model not in MODELS:
                raise invalid(f"{model!r} is not one of {', '.join(MODELS)}", "attribution_model")
        tiers, basis = self._tiers()
        if base == "attributed_revenue" and (basis == "units" or self.deduction_per_unit):
            raise invalid(
                "attributed revenue has no units: use revenue tiers and no per-unit deduction",
                "tiers" if basis == "units" else "deduction_per_unit",
            )
        target = self.sku if kind == "sku" else self.asset
        return Rule(self.id, kind, target, base, model, basis, tiers, self.deduction_per_unit, splits)

    def _tiers(self) -> tuple[tuple[Tier, ...], str]:
        if self.rate_percent is not None:
            return (Tier(Decimal(0), self.rate_percent),), "flat"
        if not isinstance(self.tiers, dict):
            raise invalid("is required (or tiers: {by: units|revenue|date, steps: [...]})", "rate_percent")
        tiers = _in(("tiers",), TiersEntry.model_validate, self.tiers)  # validated only when it is used
        return _in(("tiers",), tiers.tiers), tiers.by


class AdvanceEntry(Record):
    payee: Text
    amount: Amount
    paid_on: Day


class GuaranteeEntry(Record):
    payee: Text
    amount_per_period: Amount


class ReserveEntry(Record):
    percent: Percent = Decimal(0)
    release_after: Whole = 1
    installments: Whole = 1


def _reserve(value: Any) -> Any:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise invalid("must be a mapping with percent, release_after and installments")
    return value


class ContractEntry(Record):
    reference: Text
    creator: Text
    currency: Currency
    effective_from: Day
    expires_on: Day
    territories: Annotated[tuple[str, ...], BeforeValidator(_territories)] = (WORLDWIDE,)
    payees: Annotated[list[SplitEntry], Mappings] = []
    cross_collateralized: Annotated[bool, BeforeValidator(lambda raw: str(raw).lower() in ("true", "yes", "1"))] = False
    advances: Annotated[list[AdvanceEntry], Mappings] = []
    minimum_guarantees: Annotated[list[GuaranteeEntry], Mappings] = []
    reserve: Annotated[ReserveEntry, BeforeValidator(_reserve)] = ReserveEntry()
    rules: Annotated[list[RuleEntry], SomeMappings] = Field(default=[], validate_default=True)

    def contract(self) -> Contract:
        if self.expires_on < self.effective_from:
            raise invalid(f"{self.expires_on} is before effective_from {self.effective_from}", "expires_on")
        try:
            splits = _split(self.payees)
        except PydanticCustomError as e:
            raise invalid(e.context["message"], "payees") from None
        rules, seen = [], set()
        for n, entry in enumerate(self.rules):
            rules.append(_in(("rules", n), entry.rule, splits))
            if entry.id in seen:
                raise invalid(f"rule {entry.id!r} appears twice in the contract", "id", ("rules", n))
            seen.add(entry.id)
        payee_ids = {s.payee_id for s in splits} | {s.payee_id for rule in rules for s in rule.splits}
        for key, entries in (("minimum_guarantees", self.minimum_guarantees), ("advances", self.advances)):
            for n, entry in enumerate(entries):
                if entry.payee not in payee_ids:
                    allowed = ", ".join(sorted(payee_ids))
                    raise invalid(f"{entry.payee!r} is not one of the contract's payees ({allowed})", "payee", (key, n))
        return Contract(
            reference=self.reference,
            creator_id=self.creator,
            currency=self.currency,
            effective_from=self.effective_from,
            effective_to=self.expires_on,
            territories=self.territories,
            cross_collateralized=self.cross_collateralized,
            minimum_guarantees=tuple((g.payee, g.amount_per_period) for g in self.minimum_guarantees),
            advances=tuple(Advance(a.payee, a.amount, a.paid_on) for a in self.advances),
            reserve_rate=self.reserve.percent,
            reserve_release_after=self.reserve.release_after,
            reserve_installments=self.reserve.installments,
            rules=tuple(rules),
        )


class LicenseEntry(Record):
    asset: Text
    licensor: Text
    expires_on: Day
    on_expiry: Annotated[str, _choice(LICENSE_ACTIONS)] = "takedown"


class CatalogEntry(Record):
    creators: Annotated[list[CreatorEntry], Mappings] = []
    contracts: Annotated[list[ContractEntry], Mappings] = []
    licenses: Annotated[list[LicenseEntry], Mappings] = []


class _Misplaced(Exception):
    """A Problem found while building the domain objects from the entries (a contract's rules, a rule's tiers)."""


def _in(at: tuple, build, *args):
    """Call `build`; a problem raised inside it is placed at `at` (relative to the caller's mapping)."""
    try:
        return build(*args)
    except PydanticCustomError as e:
        ctx = e.context or {}
        raise _Misplaced(Problem(at + tuple(ctx.get("at") or ()), ctx.get("field") or "", ctx["message"])) from None
    except ValidationError as e:
        problem = first_problem(e)
        raise _Misplaced(dataclasses.replace(problem, loc=at + problem.loc)) from None
    except _Misplaced as e:
        raise _Misplaced(dataclasses.replace(e.args[0], loc=at + e.args[0].loc)) from None


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
        out = _empty(node.start_mark.line + 1)
        for k, v in node.value:
            if k.value in out.lines:
                raise _RepeatedKey(k.start_mark.line + 1, k.value, out.lines[k.value])
            out[k.value] = _build(v)
            out.lines[k.value] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v) for v in node.value]
    return node.value  # every scalar as written: no float ever comes out of a money field


def _mapping_at(root: _Node, loc: tuple) -> _Node:
    """The innermost mapping of the file on the way down `loc` (keys and list positions)."""
    node, mapping = root, root
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, _Node):
            mapping = node
    return mapping


def _where(root: _Node, loc: tuple) -> str:
    """How an unknown-key message names the mapping at `loc`: by its id when it has one, else its position."""

    def named(kind: str, node: Any, key: str, n: int) -> str:
        value = node.get(key) if isinstance(node, dict) else None
        return f"{kind} {value.strip()}" if isinstance(value, str) and value.strip() else f"{kind} {n}"

    where, node, parents = "the catalog", root, []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        child = node.get(part) if isinstance(node, dict) else None
        n = loc[i + 1] if i + 1 < len(loc) and isinstance(loc[i + 1], int) else None
        item = child[n] if n is not None and isinstance(child, list) and n < len(child) else child
        if part == "creators":
            where = named("creator", item, "id", n + 1)
        elif part == "payees" and parents[-1:] == ["creators"]:
            where = named("payee", item, "id", n + 1)
        elif part == "payees":
            where = f"split {n + 1} of {where}"
        elif part == "contracts":
            where = named("contract", item, "reference", n + 1)
        elif part == "rules":
            where = f"{named('rule', item, 'id', n + 1)} of {where}"
        elif part == "advances":
            where = f"advance {n + 1} of {where}"
        elif part == "minimum_guarantees":
            where = f"minimum guarantee {n + 1} of {where}"
        elif part == "steps":
            where = f"step {n + 1} of {where.removeprefix('tiers of ')}"
        elif part == "licenses":
            asset = item.get("asset") if isinstance(item, dict) else None
            where = f"license {n + 1} ({asset})" if isinstance(asset, str) else f"license {n + 1}"
        else:  # kyc, payout, reserve, tiers
            where = f"{part} of {where}"
        parents.append(part)
        node = item
    return where


def parse_catalog(path: Path, text: str) -> Catalog:
    try:
        root = _build(yaml.compose(text)) if text.strip() else _empty(0)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise CatalogError(
            f"{path}:{mark.line + 1 if mark else 0}: not valid YAML: {getattr(e, 'problem', e)}"
        ) from None
    except _RepeatedKey as e:
        line, key, first = e.args
        raise CatalogError(
            f"{path}:{line}: {key}: appears twice in one mapping (first on line {first}): keep one"
        ) from None
    if not isinstance(root, _Node):
        raise CatalogError(f"{path}:1: the catalog must be a mapping with creators, contracts and licenses")
    try:
        entry = CatalogEntry.model_validate(root)
        catalog = Catalog(
            creators=[Creator(c.id, c.name) for c in entry.creators],
            payees=[p.payee(c.id) for c in entry.creators for p in c.payees],
            contracts=[_in(("contracts", n), c.contract) for n, c in enumerate(entry.contracts)],
            licenses=[License(lic.asset, lic.licensor, lic.expires_on, lic.on_expiry) for lic in entry.licenses],
        )
    except ValidationError as e:
        raise _catalog_error(path, root, first_problem(e)) from None
    except _Misplaced as e:
        raise _catalog_error(path, root, e.args[0]) from None
    _check_references(_Reader(path), root, catalog)
    return catalog


def _catalog_error(path: Path, root: _Node, problem: Problem) -> CatalogError:
    mapping = _mapping_at(root, problem.loc)
    line = mapping.lines.get(problem.field, mapping.line)
    if problem.unknown_key:
        return CatalogError(f"{path}:{line}: {problem.message} in {_where(root, problem.loc)}: {problem.hint}")
    return CatalogError(f"{path}:{line}: {problem.field}: {problem.message}")


class _Reader:
    """The catalog-wide reference checks' way to point at a mapping's key."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, node: _Node, key: str, message: str) -> CatalogError:
        line = node.lines.get(key, node.line) if isinstance(node, _Node) else 0
        return CatalogError(f"{self.path}:{line}: {key}: {message}")


def _check_references(r: _Reader, root: _Node, catalog: Catalog) -> None:
    creators = {c.creator_id for c in catalog.creators}
    payees = {p.payee_id: p for p in catalog.payees}
    for kind, ids in (
        ("creator", [c.creator_id for c in catalog.creators]),
        ("payee", list(payees)),
        ("contract", [c.reference for c in catalog.contracts]),
    ):
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
            if s["payee"].strip() not in payees:
                raise r.error(node, "payees", f"unknown payee {s['payee'].strip()!r} in the contract's payees")
    problem = overlapping_contracts(catalog.contracts)
    if problem:
        a, b, target, payee = problem
        node = next(n for n, c in zip(root["contracts"], catalog.contracts) if c.reference == b)
        raise r.error(
            node,
            "effective_from",
            f"contract {b!r} overlaps {a!r} for {target} and payee {payee!r}: "
            "one contract per asset and payee at a time",
        )


def overlapping_contracts(contracts: list[Contract]) -> tuple[str, str, str, str] | None:
    """(first, second, target, payee) for two contracts covering the same asset/SKU and payee on the same day."""
    spans: dict[tuple[str, str], list[tuple[date, date, str]]] = {}
    for c in contracts:
        for rule in c.rules:
            for s in rule.splits:
                spans.setdefault((f"{rule.target_kind} {rule.target_id}", s.payee_id), []).append(
                    (c.effective_from, c.effective_to, c.reference)
                )
    for (target, payee), items in sorted(spans.items()):
        items.sort()
        for (_, end_a, ref_a), (start_b, _, ref_b) in zip(items, items[1:]):
            if start_b <= end_a and ref_a != ref_b:
                return ref_a, ref_b, target, payee
    return None
