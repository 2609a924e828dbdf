"""The royalty catalog file (mm_pipelines.royalties.contracts) and the sales-report / per-period parsing
helpers of mm_pipelines.royalties.warehouse: what a good file becomes, and that every bad one is rejected
with `file:line: field: what to fix`, pointing at the exact line."""

from __future__ import annotations

import dataclasses
import re
import string
import textwrap
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_pipelines.events.event_schema import CURRENCIES
from mm_pipelines.royalties.contracts import (
    BASES,
    RATE_BASES,
    Advance,
    Catalog,
    CatalogError,
    Contract,
    Rule,
    Split,
    Tier,
    contract_from_document,
    overlapping_contracts,
    parse_catalog,
)
from mm_pipelines.royalties.warehouse import (
    SALES_COLUMNS,
    SalesFileError,
    currencies_to_convert,
    parse_sales_csv,
    period_bounds,
    rule_rows,
)

pytestmark = pytest.mark.unit

D = Decimal
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "royalty_catalog.yml"
TEXT = EXAMPLE.read_text(encoding="utf-8")
PATH = Path("catalogs") / "royalty_catalog.yml"


# --- helpers ------------------------------------------------------------------------------------------------


def parse(text: str = TEXT) -> Catalog:
    return parse_catalog(PATH, text)


def edit(old: str, new: str, text: str = TEXT) -> str:
    """`text` with the one occurrence of `old` replaced (fails loudly if the example file changed)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the catalog text"
    return text.replace(old, new)


def line_of(text: str, fragment: str, after: str | None = None) -> int:
    """1-based number of the first line containing `fragment` (at or after the first line containing `after`)."""
    lines = text.splitlines()
    start = 0 if after is None else next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and fragment in line) + 1


def rejected(text: str, field: str, line: int, *fix: str) -> str:
    """The parse fails with `PATH:line: field: ...` and the message contains every hint in `fix`."""
    with pytest.raises(CatalogError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"{PATH}:{line}: {field}: "), message
    for hint in fix:
        assert hint in message, f"{hint!r} not in {message!r}"
    assert "\n" not in message
    return message


def add_contract(block: str, text: str = TEXT) -> str:
    """A further contract appended to the example's contracts list."""
    return edit(
        "\n\nlicenses:", "\n" + textwrap.indent(textwrap.dedent(block).strip("\n"), "  ") + "\n\nlicenses:", text
    )


def add_payee(block: str, text: str = TEXT) -> str:
    """A further payee of creator cr-cy."""
    anchor = '        threshold: "50.00"\n'
    return edit(anchor, anchor + textwrap.indent(textwrap.dedent(block).strip("\n"), "      ") + "\n", text)


def cy_contract(reference: str, start: str, end: str, payee: str = "pe-cy", sku: str = "SKU-ALBUM-1") -> str:
    return f"""
        - reference: {reference}
          creator: cr-cy
          currency: EUR
          effective_from: {start}
          expires_on: {end}
          payees:
            - {{payee: {payee}, share: 100}}
          rules:
            - id: album
              sku: {sku}
              rate_percent: 12
        """


PE_DEE = """
    - id: pe-dee
      name: Dee Producer
      kyc: {status: verified, evidence: "kyc://vendor/cases/dee-0009"}
      payout: {method: manual, currency: GBP}
    """


def walk(value):
    """Every leaf of a (nested) dataclass value."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from walk(v)
    else:
        yield value


def make_contract(
    reference="CT-1",
    start=date(2026, 1, 1),
    end=date(2026, 12, 31),
    rules=None,
    creator="cr-1",
    cross_collateralized=False,
    reserve=D("0"),
) -> Contract:
    rules = rules or (rule("r1", "sku", "SKU-1", {"pe-a": "1"}),)
    return Contract(
        reference, creator, "EUR", start, end, ("WW",), cross_collateralized, (), (), reserve, 1, 1, tuple(rules)
    )


def rule(rule_id: str, kind: str, target: str, splits: dict[str, str], rate: str = "0.1") -> Rule:
    base = "net_sales" if kind == "sku" else "attributed_revenue"
    return Rule(
        rule_id,
        kind,
        target,
        base,
        "" if kind == "sku" else "linear",
        "flat",
        (Tier(D(0), D(rate)),),
        D(0),
        tuple(Split(p, D(s)) for p, s in sorted(splits.items())),
    )


# --- 1. the example catalog ---------------------------------------------------------------------------------


def test_example_catalog_counts_and_licenses():
    catalog = parse()
    assert [c.creator_id for c in catalog.creators] == ["cr-ada", "cr-cy"]
    assert [(p.payee_id, p.creator_id) for p in catalog.payees] == [
        ("pe-ada", "cr-ada"),
        ("pe-bob", "cr-ada"),
        ("pe-cy", "cr-cy"),
    ]
    assert [c.reference for c in catalog.contracts] == ["CT-ADA-2026", "CT-CY-2026"]
    assert [[r.rule_id for r in c.rules] for c in catalog.contracts] == [["book", "video"], ["album"]]
    assert [(lic.asset_id, lic.expires_on, lic.on_expiry) for lic in catalog.licenses] == [
        ("asset-0037", date(2026, 12, 10), "renew"),
        ("asset-002", date(2027, 3, 1), "takedown"),
    ]


def test_example_payees_keep_money_and_percentages_as_decimal_fractions():
    ada, bob, cy = parse().payees
    assert (ada.kyc_status, ada.kyc_evidence) == ("verified", "kyc://vendor/cases/ada-0001")
    assert (ada.payout_method, ada.currency, ada.iban, ada.bic) == (
        "sepa",
        "EUR",
        "DE89370400440532013000",
        "COBADEFFXXX",
    )
    assert (bob.kyc_status, bob.bic, cy.iban) == ("pending", "", "GB29NWBK60161331926819")
    assert (ada.threshold, bob.threshold, cy.threshold) == (D("25.00"), D("10.00"), D("50.00"))
    assert str(bob.threshold) == "10.00"  # as written, never through a float
    assert bob.withholding_rate == D("0.15") and str(bob.withholding_rate) == "0.15"
    assert ada.withholding_rate == 0 and cy.withholding_rate == 0  # omitted -> 0


def test_example_contracts_terms():
    ada, cy = parse().contracts
    assert (ada.creator_id, ada.currency, ada.effective_from, ada.effective_to) == (
        "cr-ada",
        "USD",
        date(2026, 1, 1),
        date(2027, 12, 31),
    )
    assert ada.territories == ("WW",)
    assert cy.territories == ("DE", "FR", "GB")  # sorted
    assert ada.advances == (Advance("pe-ada", D("500.00"), date(2026, 10, 5)),)
    assert ada.minimum_guarantees == ()
    assert cy.minimum_guarantees == (("pe-cy", D("100.00")),)
    assert (ada.reserve_rate, ada.reserve_release_after, ada.reserve_installments) == (D("0.1"), 2, 2)
    assert (cy.reserve_rate, cy.reserve_release_after, cy.reserve_installments) == (D(0), 1, 1)  # no reserve given
    assert ada.cross_collateralized is False and cy.cross_collateralized is False


def test_example_rules_tiers_and_splits():
    ada, cy = parse().contracts
    book, video = ada.rules
    assert (book.target_kind, book.target_id, book.base, book.attribution_model, book.rate_basis) == (
        "sku",
        "SKU-BOOK-1",
        "net_sales",
        "",
        "units",
    )
    assert book.tiers == (Tier(D(0), D("0.1")), Tier(D(100), D("0.125")))
    assert [str(t.rate) for t in book.tiers] == ["0.1", "0.125"]
    assert book.deduction_per_unit == D("0.50")
    assert (video.target_kind, video.target_id, video.base, video.attribution_model, video.rate_basis) == (
        "asset",
        "asset-0037",
        "attributed_revenue",
        "linear",
        "flat",
    )
    assert video.tiers == (Tier(D(0), D("0.05")),)
    assert video.deduction_per_unit == 0
    # no payees on the rules: both take the contract's split, as fractions
    assert book.splits == video.splits == (Split("pe-ada", D("0.8")), Split("pe-bob", D("0.2")))
    (album,) = cy.rules
    assert album.tiers == (Tier(D(0), D("0.15")),)
    assert album.splits == (Split("pe-cy", D(1)),)


def test_no_float_anywhere_and_percent_converted_exactly():
    catalog = parse()
    leaves = [v for item in catalog.payees + catalog.contracts for v in walk(item)]
    assert not any(isinstance(v, float) for v in leaves)
    decimals = [v for v in leaves if isinstance(v, Decimal)]
    assert len(decimals) > 20
    # 10 -> exactly one tenth (a float detour would give 0.1000000000000000055511151231257827...)
    assert parse().contracts[0].rules[0].tiers[0].rate.as_tuple() == D("0.1").as_tuple()


def test_rule_payees_override_contract_split():
    text = edit(
        "        rate_percent: 5\n",
        "        rate_percent: 5\n        payees:\n"
        "          - {payee: pe-bob, share: 25.5}\n          - {payee: pe-ada, share: 74.5}\n",
    )
    book, video = parse(text).contracts[0].rules
    assert video.splits == (Split("pe-ada", D("0.745")), Split("pe-bob", D("0.255")))
    assert book.splits == (Split("pe-ada", D("0.8")), Split("pe-bob", D("0.2")))


def test_account_id_separate_and_cross_collateralised():
    ada, cy = parse().contracts
    assert ada.account_id("pe-ada") == "pe-ada:CT-ADA-2026"
    assert cy.account_id("pe-cy") == "pe-cy:CT-CY-2026"
    text = edit("  - reference: CT-ADA-2026\n", "  - reference: CT-ADA-2026\n    cross_collateralized: true\n")
    xc, separate = parse(text).contracts
    assert xc.cross_collateralized is True and separate.cross_collateralized is False
    assert xc.account_id("pe-ada") == "pe-ada:xc:cr-ada"
    assert xc.account_id("pe-bob") == "pe-bob:xc:cr-ada"
    assert separate.account_id("pe-cy") == "pe-cy:CT-CY-2026"
    # a second cross-collateralised contract of the same creator shares the payee's account
    other = dataclasses.replace(xc, reference="CT-ADA-2028")
    assert other.account_id("pe-ada") == xc.account_id("pe-ada")


# --- 2. rejections: file, line, field and what to fix ----------------------------------------------------


def test_shares_must_sum_to_100():
    text = edit("{payee: pe-ada, share: 80}", "{payee: pe-ada, share: 60}")
    text = edit("{payee: pe-bob, share: 20}", "{payee: pe-bob, share: 30}", text)
    lines = text.splitlines()
    line = (
        lines.index("    payees:", lines.index("  - reference: CT-ADA-2026")) + 1
    )  # the contract's split, not the creator's payees
    rejected(text, "payees", line, "shares sum to 90%", "exactly 100%")


def test_shares_over_100_in_a_rule_split():
    text = edit(
        "        rate_percent: 15\n",
        "        rate_percent: 15\n        payees:\n          - {payee: pe-cy, share: 110}\n",
    )
    rejected(text, "share", line_of(text, "share: 110"), "110", "0–100")
    text = edit(
        "        rate_percent: 15\n",
        "        rate_percent: 15\n        payees:\n"
        "          - {payee: pe-cy, share: 60.5}\n          - {payee: pe-cy, share: 50}\n",
    )
    rejected(text, "payees", line_of(text, "payees:", after="id: album"), "110.5%", "exactly 100%")


def test_payee_twice_in_a_split():
    text = edit("{payee: pe-bob, share: 20}", "{payee: pe-ada, share: 20}")
    rejected(text, "payees", line_of(text, "payees:", after="CT-ADA-2026"), "twice")


def test_zero_share_rejected():
    text = edit("{payee: pe-ada, share: 80}", "{payee: pe-ada, share: 100}")
    text = edit("{payee: pe-bob, share: 20}", "{payee: pe-bob, share: 0}", text)
    rejected(text, "share", line_of(text, "share: 0}"), "leave the payee out")


def test_overlapping_contracts_same_sku_and_payee_rejected():
    # the second contract starts on the last day of the first: one day of overlap
    text = add_contract(cy_contract("CT-CY-2027", "2026-12-31", "2027-12-31"))
    message = rejected(
        text,
        "effective_from",
        line_of(text, "effective_from:", after="CT-CY-2027"),
        "'CT-CY-2027' overlaps 'CT-CY-2026'",
        "sku SKU-ALBUM-1",
        "'pe-cy'",
        "one contract per asset and payee at a time",
    )
    assert str(PATH) in message


def test_overlap_through_a_rule_level_split_on_an_asset():
    text = add_contract("""
        - reference: CT-BOB-VIDEO
          creator: cr-ada
          currency: USD
          effective_from: 2027-06-01
          expires_on: 2028-05-31
          rules:
            - id: video
              asset: asset-0037
              rate_percent: 3
              payees:
                - {payee: pe-bob, share: 100}
        """)
    rejected(
        text,
        "effective_from",
        line_of(text, "effective_from:", after="CT-BOB-VIDEO"),
        "'CT-BOB-VIDEO' overlaps 'CT-ADA-2026'",
        "asset asset-0037",
        "'pe-bob'",
    )


def test_contracts_that_touch_do_not_overlap():
    text = add_contract(cy_contract("CT-CY-2027", "2027-01-01", "2027-12-31"))
    assert [c.reference for c in parse(text).contracts] == ["CT-ADA-2026", "CT-CY-2026", "CT-CY-2027"]
    before = add_contract(cy_contract("CT-CY-2025", "2025-06-01", "2026-05-31"))
    assert len(parse(before).contracts) == 3


def test_overlapping_periods_for_different_payees_or_skus_are_fine():
    text = add_contract(cy_contract("CT-DEE-2026", "2026-01-01", "2027-12-31", payee="pe-dee"), add_payee(PE_DEE))
    catalog = parse(text)
    assert [c.reference for c in catalog.contracts][-1] == "CT-DEE-2026"
    assert catalog.payees[-1].payout_method == "manual" and catalog.payees[-1].iban == ""
    other_sku = add_contract(cy_contract("CT-CY-SINGLE", "2026-06-01", "2026-12-31", sku="SKU-SINGLE-1"))
    assert len(parse(other_sku).contracts) == 3


@pytest.mark.parametrize("bad", ["USX", "usd", "US", "EURO", "''"])
def test_unknown_contract_currency(bad):
    text = edit("    currency: USD\n", f"    currency: {bad}\n")
    rejected(text, "currency", line_of(text, f"currency: {bad}"), "ISO 4217" if bad != "''" else "required")


def test_unknown_payout_currency():
    text = edit("payout: {method: sepa, currency: EUR, iban: GB29", "payout: {method: sepa, currency: XYZ, iban: GB29")
    rejected(text, "currency", line_of(text, "currency: XYZ"), "'XYZ'", "ISO 4217")


@pytest.mark.parametrize("bad", ["-1", "100.01", "1e3", "ten"])
def test_rate_outside_0_to_100(bad):
    text = edit("        rate_percent: 15\n", f"        rate_percent: {bad}\n")
    hint = "is not a number" if bad == "ten" else "outside 0–100"
    rejected(text, "rate_percent", line_of(text, f"rate_percent: {bad}"), hint)


def test_rate_bounds_0_and_100_are_accepted():
    for rate, fraction in (("0", D(0)), ("100", D(1))):
        text = edit("        rate_percent: 15\n", f"        rate_percent: {rate}\n")
        assert parse(text).contracts[1].rules[0].tiers == (Tier(D(0), fraction),)


def test_tier_step_rate_outside_range():
    text = edit("{from: 100, rate_percent: 12.5}", "{from: 100, rate_percent: 112.5}")
    rejected(text, "rate_percent", line_of(text, "112.5"), "112.5 is outside 0–100")


@pytest.mark.parametrize(
    "field, bad",
    [
        ("effective_from", "2026-02-30"),
        ("effective_from", "2026/06/01"),
        ("expires_on", "31.12.2026"),
        ("expires_on", "soon"),
    ],
)
def test_bad_date(field, bad):
    old = {"effective_from": "    effective_from: 2026-06-01\n", "expires_on": "    expires_on: 2026-12-31\n"}[field]
    text = edit(old, f"    {field}: {bad}\n")
    rejected(text, field, line_of(text, f"{field}: {bad}"), repr(bad), "YYYY-MM-DD")


def test_bad_advance_date_points_at_the_advance():
    text = edit("paid_on: 2026-10-05", "paid_on: 2026-10-32")
    rejected(text, "paid_on", line_of(text, "paid_on: 2026-10-32"), "YYYY-MM-DD")


def test_expiry_before_start():
    text = edit("    expires_on: 2026-12-31\n", "    expires_on: 2026-05-31\n")
    rejected(
        text, "expires_on", line_of(text, "expires_on: 2026-05-31"), "2026-05-31 is before effective_from 2026-06-01"
    )
    same_day = edit("    expires_on: 2026-12-31\n", "    expires_on: 2026-06-01\n")
    assert parse(same_day).contracts[1].effective_to == date(2026, 6, 1)  # a one-day contract is fine


def test_rule_with_both_sku_and_asset():
    text = edit("        sku: SKU-ALBUM-1\n", "        sku: SKU-ALBUM-1\n        asset: asset-002\n")
    rejected(text, "sku", line_of(text, "sku: SKU-ALBUM-1"), "exactly one of sku or asset")


def test_rule_with_neither_sku_nor_asset():
    text = edit("        sku: SKU-ALBUM-1\n", "")
    rejected(text, "sku", line_of(text, "- id: album"), "exactly one of sku or asset")


def test_attributed_revenue_with_unit_tiers():
    text = edit(
        "        rate_percent: 5\n",
        "        tiers:\n          by: units\n          steps:\n            - {from: 0, rate_percent: 5}\n",
    )
    rejected(
        text, "tiers", line_of(text, "tiers:", after="id: video"), "attributed revenue has no units", "revenue tiers"
    )
    revenue = edit(
        "          by: units\n          steps:\n            - {from: 0, rate_percent: 5}",
        "          by: revenue\n          steps:\n            - {from: 0, rate_percent: 5}",
        text,
    )
    assert parse(revenue).contracts[0].rules[1].rate_basis == "revenue"


def test_attributed_revenue_with_per_unit_deduction():
    text = edit("        rate_percent: 5\n", '        rate_percent: 5\n        deduction_per_unit: "0.10"\n')
    rejected(text, "deduction_per_unit", line_of(text, '"0.10"'), "no per-unit deduction")
    zero = edit("        rate_percent: 5\n", '        rate_percent: 5\n        deduction_per_unit: "0.00"\n')
    assert parse(zero).contracts[0].rules[1].deduction_per_unit == 0


def test_asset_rule_cannot_be_net_sales_and_sku_rule_cannot_be_attributed():
    text = edit("        base: attributed_revenue\n", "        base: net_sales\n")
    rejected(text, "base", line_of(text, "base: net_sales"), "use attributed_revenue")
    text = edit("        sku: SKU-ALBUM-1\n", "        sku: SKU-ALBUM-1\n        base: attributed_revenue\n")
    rejected(text, "base", line_of(text, "base: attributed_revenue", after="id: album"), "needs an asset")


def test_unknown_attribution_model():
    text = edit("attribution_model: linear", "attribution_model: lineer")
    rejected(text, "attribution_model", line_of(text, "lineer"), "'lineer' is not one of", "linear", "time_decay")


@pytest.mark.parametrize("second", ["0", "-5"])
def test_tiers_must_increase(second):
    text = edit("{from: 100, rate_percent: 12.5}", f"{{from: {second}, rate_percent: 12.5}}")
    if second.startswith("-"):  # a negative start is caught on its own line
        rejected(text, "from", line_of(text, f"from: {second}"), "outside 0–inf")
    else:
        rejected(text, "steps", line_of(text, "steps:"), "strictly increasing")


def test_tiers_decreasing_after_the_second_step():
    text = edit(
        "            - {from: 100, rate_percent: 12.5}\n",
        "            - {from: 100, rate_percent: 12.5}\n            - {from: 50, rate_percent: 15}\n",
    )
    rejected(text, "steps", line_of(text, "steps:"), "strictly increasing")


def test_tiers_must_start_at_0():
    text = edit("{from: 0, rate_percent: 10}", "{from: 1, rate_percent: 10}")
    rejected(text, "from", line_of(text, "{from: 1, rate_percent: 10}"), "first step must start at 0")


def test_date_tiers_may_start_on_any_day():
    text = edit(
        "        rate_percent: 15\n",
        "        tiers:\n          by: date\n          steps:\n"
        "            - {from: 2026-06-01, rate_percent: 15}\n            - {from: 2026-09-01, rate_percent: 10}\n",
    )
    (album,) = parse(text).contracts[1].rules
    assert album.rate_basis == "date"
    assert album.tiers == (
        Tier(D((date(2026, 6, 1) - date(1970, 1, 1)).days), D("0.15")),
        Tier(D((date(2026, 9, 1) - date(1970, 1, 1)).days), D("0.1")),
    )


@pytest.mark.parametrize("bad", ["DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000"])
def test_invalid_iban_for_sepa_payee(bad):
    text = edit("iban: DE89370400440532013000", f"iban: {bad}")
    rejected(text, "iban", line_of(text, bad), repr(bad))


def test_iban_with_spaces_and_lower_case_is_normalised_and_manual_payee_needs_none():
    text = edit("iban: DE89370400440532013000", 'iban: "de89 3704 0044 0532 0130 00"')
    assert parse(text).payees[0].iban == "DE89370400440532013000"
    manual = edit(
        "payout: {method: sepa, currency: EUR, iban: FR1420041010050500013M02606}",
        "payout: {method: manual, currency: EUR}",
    )
    assert parse(manual).payees[1].payout_method == "manual"
    missing = edit(
        "payout: {method: sepa, currency: EUR, iban: FR1420041010050500013M02606}",
        "payout: {method: sepa, currency: EUR}",
    )
    rejected(missing, "iban", line_of(missing, "payout: {method: sepa, currency: EUR}"), "IBAN")


def test_unknown_creator():
    text = edit("    creator: cr-cy\n", "    creator: cr-zed\n")
    rejected(text, "creator", line_of(text, "creator: cr-zed"), "unknown creator 'cr-zed'")


def test_unknown_payee_in_the_contract_split():
    text = edit("{payee: pe-bob, share: 20}", "{payee: pe-zed, share: 20}")
    rejected(text, "payees", line_of(text, "payees:", after="CT-ADA-2026"), "unknown payee 'pe-zed'")


def test_unknown_payee_in_a_rule_split():
    text = edit(
        "        rate_percent: 5\n",
        "        rate_percent: 5\n        payees:\n"
        "          - {payee: pe-ada, share: 50}\n          - {payee: pe-zed, share: 50}\n",
    )
    rejected(text, "payees", line_of(text, "payees:", after="CT-ADA-2026"), "unknown payee 'pe-zed'", "rule 'video'")


def test_unknown_payee_in_a_contract_split_that_every_rule_overrides():
    """The contract-level split still names who gets the advance: a typo there must not slip through."""
    text = edit("{payee: pe-bob, share: 20}", "{payee: pe-bbo, share: 20}")
    text = edit("      - {payee: pe-ada, amount:", "      - {payee: pe-bbo, amount:", text)
    own = "        payees:\n          - {payee: pe-ada, share: 100}\n"
    text = edit('        deduction_per_unit: "0.50"\n', '        deduction_per_unit: "0.50"\n' + own, text)
    text = edit("        rate_percent: 5\n", "        rate_percent: 5\n" + own, text)
    rejected(text, "payees", line_of(text, "payees:", after="CT-ADA-2026"), "unknown payee 'pe-bbo'")


def test_advance_and_guarantee_must_name_a_contract_payee():
    text = edit("{payee: pe-ada, amount:", "{payee: pe-cy, amount:")
    rejected(
        text,
        "payee",
        line_of(text, "{payee: pe-cy, amount:"),
        "'pe-cy' is not one of the contract's payees (pe-ada, pe-bob)",
    )
    text = edit("{payee: pe-cy, amount_per_period:", "{payee: pe-ada, amount_per_period:")
    rejected(text, "payee", line_of(text, "amount_per_period"), "not one of the contract's payees (pe-cy)")


@pytest.mark.parametrize("bad", ["approved", "VERIFIED", "''"])
def test_bad_kyc_status(bad):
    text = edit("kyc: {status: pending,", f"kyc: {{status: {bad},")
    rejected(
        text, "status", line_of(text, f"status: {bad}"), "verified, pending, rejected" if bad != "''" else "required"
    )


def test_invalid_yaml():
    text = edit("    name: Cy Records\n", "    name: Cy Records: the label\n")
    rejected_line = text.splitlines().index("    name: Cy Records: the label") + 1
    with pytest.raises(CatalogError) as info:
        parse(text)
    assert str(info.value).startswith(f"{PATH}:{rejected_line}: not valid YAML: ")
    assert "mapping values are not allowed here" in str(info.value)


def test_invalid_yaml_unclosed_flow():
    text = edit("territories: [GB, DE, FR]", "territories: [GB, DE, FR")
    with pytest.raises(CatalogError, match=rf"^{re.escape(str(PATH))}:\d+: not valid YAML"):
        parse(text)


def test_catalog_must_be_a_mapping():
    with pytest.raises(CatalogError, match=rf"^{re.escape(str(PATH))}:1: the catalog must be a mapping"):
        parse("- just\n- a list\n")


def test_duplicate_ids():
    text = edit("  - id: cr-cy\n", "  - id: cr-ada\n")
    with pytest.raises(CatalogError, match=r"creator id 'cr-ada' appears more than once"):
        parse(text)
    text = edit(
        "    rules:\n      - id: album\n",
        "    rules:\n      - id: album\n        sku: SKU-X\n        rate_percent: 1\n      - id: album\n",
    )
    rejected(text, "id", line_of(text, "- id: album", after="SKU-X"), "rule 'album' appears twice")


@pytest.mark.parametrize("territories", ["[ww]", "[GBR]", "[]", "[G1]"])
def test_bad_territories(territories):
    text = edit("territories: [GB, DE, FR]", f"territories: {territories}")
    rejected(text, "territories", line_of(text, f"territories: {territories}"), "ISO 3166", "WW")


@pytest.mark.parametrize(
    "field, bad", [("release_after", "0"), ("installments", "-1"), ("installments", "1.5"), ("release_after", "²")]
)
def test_bad_reserve_whole_numbers(field, bad):
    old = {"release_after": "release_after: 2", "installments": "installments: 2"}[field]
    text = edit(old, f"{field}: {bad}")
    rejected(text, field, line_of(text, "reserve:"), "whole number >= 1")


def test_reserve_percent_out_of_range():
    text = edit("reserve: {percent: 10,", "reserve: {percent: 101,")
    rejected(text, "percent", line_of(text, "reserve:"), "outside 0–100")


# --- unknown keys: a typo in an optional key would silently take its default --------------------------------


@pytest.mark.parametrize(
    "old, new, where, hint",
    [
        ("withholding_percent: 15", "withholding_percnt: 15", "payee pe-bob", "did you mean 'withholding_percent'?"),
        ('threshold: "25.00"', 'treshold: "25.00"', "payee pe-ada", "did you mean 'threshold'?"),
        (
            'evidence: "kyc://vendor/cases/ada-0001"',
            'evidense: "kyc://vendor/cases/ada-0001"',
            "kyc of payee pe-ada",
            "did you mean 'evidence'?",
        ),
        (
            "bic: COBADEFFXXX",
            "swift: COBADEFFXXX",
            "payout of payee pe-ada",
            "valid keys are method, currency, iban, bic",
        ),
        ("    name: Ada Studio\n", "    name: Ada Studio\n    nmae: Ada\n", "creator cr-ada", "did you mean 'name'?"),
        (
            "    territories: [WW]\n",
            "    territories: [WW]\n    cross_collateralised: true\n",
            "contract CT-ADA-2026",
            "did you mean 'cross_collateralized'?",
        ),
        (
            "{payee: pe-bob, share: 20}",
            "{payee: pe-bob, shares: 20}",
            "split 2 of contract CT-ADA-2026",
            "did you mean 'share'?",
        ),
        (
            "paid_on: 2026-10-05}",
            "paid_at: 2026-10-05}",
            "advance 1 of contract CT-ADA-2026",
            "did you mean 'paid_on'?",
        ),
        (
            'amount_per_period: "100.00"',
            'amount_per_month: "100.00"',
            "minimum guarantee 1 of contract CT-CY-2026",
            "did you mean 'amount_per_period'?",
        ),
        ("release_after: 2,", "release_afer: 2,", "reserve of contract CT-ADA-2026", "did you mean 'release_after'?"),
        (
            'deduction_per_unit: "0.50"',
            'deductions_per_unit: "0.50"',
            "rule book of contract CT-ADA-2026",
            "did you mean 'deduction_per_unit'?",
        ),
        (
            "        rate_percent: 5\n",
            "        rate_precent: 5\n",
            "rule video of contract CT-ADA-2026",
            "did you mean 'rate_percent'?",
        ),
        (
            "          by: units\n",
            "          by: units\n          cap: 10\n",
            "tiers of rule book of contract CT-ADA-2026",
            "valid keys are by, steps",
        ),
        (
            "{from: 100, rate_percent: 12.5}",
            "{from: 100, rate_pct: 12.5}",
            "step 2 of rule book of contract CT-ADA-2026",
            "did you mean 'rate_percent'?",
        ),
        (
            "licensor: Archive Films, expires_on: 2027-03-01, on_expiry: takedown}",
            "licensor: Archive Films, expires_on: 2027-03-01, on_expire: takedown}",
            "license 2 (asset-002)",
            "did you mean 'on_expiry'?",
        ),
        ("\nlicenses:\n", "\nlicences:\n", "the catalog", "did you mean 'licenses'?"),
    ],
)
def test_an_unknown_key_is_an_error_naming_its_line_and_the_nearest_valid_key(old, new, where, hint):
    text = edit(old, new)
    key = next(k for k in re.findall(r"(\w+):", new) if k not in re.findall(r"(\w+):", old))
    with pytest.raises(CatalogError) as info:
        parse(text)
    assert str(info.value) == f"{PATH}:{line_of(text, key + ':')}: unknown key {key!r} in {where}: {hint}"


def test_a_rule_level_split_and_a_key_repeated_in_one_mapping_are_checked_too():
    text = edit("        rate_percent: 15\n", "        rate_percent: 15\n        payees: [{payee: pe-cy, shar: 100}]\n")
    with pytest.raises(
        CatalogError,
        match=r":\d+: unknown key 'shar' in split 1 of rule album of contract CT-CY-2026: did you mean 'share'\?$",
    ):
        parse(text)
    text = edit(
        "        withholding_percent: 15\n", "        withholding_percent: 15\n        withholding_percent: 7\n"
    )
    message = rejected(text, "withholding_percent", line_of(text, "withholding_percent: 7"), "appears twice")
    assert f"line {line_of(text, 'withholding_percent: 15')}" in message


# --- 3. versions ------------------------------------------------------------------------------------------


def test_versions_stable_for_identical_content():
    a, b = parse().contracts, parse().contracts
    assert [c.version for c in a] == [c.version for c in b]
    assert [[c.rule_version(r) for r in c.rules] for c in a] == [[c.rule_version(r) for r in c.rules] for c in b]
    assert all(re.fullmatch(r"[0-9a-f]{12}", c.version) for c in a)
    assert a[0].version != a[1].version
    # a comment or formatting change is not a change of terms
    assert (
        parse("# reviewed by Finance\n" + TEXT.replace("{from: 0, rate_percent: 10}", "{from: 0,   rate_percent: 10}"))
        .contracts[0]
        .version
        == a[0].version
    )


def test_reserve_change_changes_version_but_not_rule_versions():
    before = parse().contracts[0]
    after = parse(edit("reserve: {percent: 10,", "reserve: {percent: 12,")).contracts[0]
    assert after.reserve_rate == D("0.12")
    assert after.version != before.version
    assert [after.rule_version(r) for r in after.rules] == [before.rule_version(r) for r in before.rules]


def test_rate_change_changes_that_rules_version_only():
    before = parse().contracts[0]
    after = parse(edit("        rate_percent: 5\n", "        rate_percent: 6\n")).contracts[0]
    assert after.version != before.version
    assert after.rule_version(after.rules[1]) != before.rule_version(before.rules[1])
    assert after.rule_version(after.rules[0]) == before.rule_version(before.rules[0])


@pytest.mark.parametrize(
    "old, new, rules_change",
    [
        ("    currency: USD\n", "    currency: EUR\n", True),
        ("    expires_on: 2027-12-31\n", "    expires_on: 2027-06-30\n", True),
        ("    territories: [WW]\n", "    territories: [US]\n", True),
        ('{payee: pe-ada, amount: "500.00"', '{payee: pe-ada, amount: "600.00"', False),
        ("  - reference: CT-ADA-2026\n", "  - reference: CT-ADA-2026\n    cross_collateralized: true\n", False),
        ('deduction_per_unit: "0.50"', 'deduction_per_unit: "0.60"', None),
        (
            "{payee: pe-ada, share: 80}\n      - {payee: pe-bob, share: 20}",
            "{payee: pe-ada, share: 70}\n      - {payee: pe-bob, share: 30}",
            True,
        ),
    ],
)
def test_any_change_of_terms_changes_the_version(old, new, rules_change):
    before = parse().contracts[0]
    after = parse(edit(old, new)).contracts[0]
    assert after.version != before.version
    changed = [after.rule_version(a) != before.rule_version(b) for a, b in zip(after.rules, before.rules)]
    if rules_change is None:  # the book rule only
        assert changed == [True, False]
    else:
        assert changed == [rules_change] * 2


# --- 4. stored documents round-trip exactly -----------------------------------------------------------------

ids = st.text(alphabet=string.ascii_letters + string.digits + "-_:/ é", min_size=1, max_size=10)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
small_dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
tiers = st.lists(st.builds(Tier, decimals, decimals), min_size=1, max_size=3).map(tuple)
splits = st.lists(st.builds(Split, ids, decimals), min_size=1, max_size=3).map(tuple)
rules = st.builds(
    Rule,
    ids,
    st.sampled_from(["sku", "asset"]),
    ids,
    st.sampled_from(BASES),
    st.sampled_from(["", "linear", "shapley"]),
    st.sampled_from(RATE_BASES),
    tiers,
    decimals,
    splits,
)
contracts = st.builds(
    Contract,
    reference=ids,
    creator_id=ids,
    currency=st.sampled_from(sorted(CURRENCIES)),
    effective_from=small_dates,
    effective_to=small_dates,
    territories=st.lists(st.sampled_from(["WW", "GB", "DE", "US"]), min_size=1, max_size=3, unique=True).map(
        lambda t: tuple(sorted(t))
    ),
    cross_collateralized=st.booleans(),
    minimum_guarantees=st.lists(st.tuples(ids, decimals), max_size=2).map(tuple),
    advances=st.lists(st.builds(Advance, ids, decimals, small_dates), max_size=2).map(tuple),
    reserve_rate=decimals,
    reserve_release_after=st.integers(1, 36),
    reserve_installments=st.integers(1, 12),
    rules=st.lists(rules, min_size=1, max_size=3).map(tuple),
)


def exactly_equal(a: Contract, b: Contract) -> None:
    assert a == b
    assert repr(a) == repr(b)  # Decimal('0.10') == Decimal('0.1'), but the stored terms must be the written ones
    assert a.version == b.version
    assert [a.rule_version(r) for r in a.rules] == [b.rule_version(r) for r in b.rules]


@given(contracts)
@settings(max_examples=200, deadline=None)
def test_document_round_trip_of_any_contract(contract):
    doc = contract.document()
    rebuilt = contract_from_document(doc)
    exactly_equal(rebuilt, contract)
    assert rebuilt.document() == doc
    assert not any(isinstance(v, float) for v in walk(rebuilt))


@st.composite
def catalog_texts(draw):
    """A small valid catalog, written as Finance would write it."""
    n_payees = draw(st.integers(1, 3))
    payees = [f"pe-{i}" for i in range(n_payees)]
    cents = draw(st.lists(st.integers(1, 10_000), min_size=n_payees, max_size=n_payees))
    # split 100% into n_payees shares of at most 2 decimals
    total = sum(cents)
    hundredths = [c * 10_000 // total for c in cents]
    hundredths = [max(h, 1) for h in hundredths]
    hundredths[0] += 10_000 - sum(hundredths)
    if hundredths[0] <= 0:
        hundredths = [10_000 - (n_payees - 1)] + [1] * (n_payees - 1)
    shares = [str(D(h) / 100) for h in hundredths]
    rate = draw(st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False))
    reserve = draw(st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False))
    start = draw(small_dates)
    end = start + timedelta(days=draw(st.integers(0, 800)))
    mg = draw(st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False))
    steps = draw(st.lists(st.integers(1, 10_000), max_size=3, unique=True).map(sorted))
    payee_yaml = "".join(
        f'      - id: {p}\n        name: Payee {p}\n        kyc: {{status: verified, evidence: "kyc://{p}"}}\n'
        f"        payout: {{method: manual, currency: GBP}}\n"
        for p in payees
    )
    split_yaml = "".join(f"      - {{payee: {p}, share: {s}}}\n" for p, s in zip(payees, shares))
    step_yaml = "".join(f"            - {{from: {s}, rate_percent: {rate}}}\n" for s in steps)
    xc = draw(st.booleans())
    text = (
        f"creators:\n  - id: cr-1\n    name: One\n    payees:\n{payee_yaml}"
        "contracts:\n  - reference: CT-1\n    creator: cr-1\n"
        f"    currency: {draw(st.sampled_from(['EUR', 'USD', 'JPY']))}\n"
        f"    effective_from: {start}\n    expires_on: {end}\n    cross_collateralized: {str(xc).lower()}\n"
        f"    payees:\n{split_yaml}"
        f'    minimum_guarantees:\n      - {{payee: {payees[-1]}, amount_per_period: "{mg}"}}\n'
        f"    reserve: {{percent: {reserve}, release_after: 3, installments: 2}}\n"
        f"    rules:\n      - id: flat\n        sku: SKU-1\n        rate_percent: {rate}\n"
        f"      - id: tiered\n        asset: asset-1\n        tiers:\n          by: revenue\n          steps:\n"
        f"            - {{from: 0, rate_percent: {rate}}}\n{step_yaml}"
    )
    return text, payees, hundredths, rate, xc


@given(catalog_texts())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_document_round_trip_of_parsed_contracts(drawn):
    text, payees, hundredths, rate, xc = drawn
    (contract,) = parse(text).contracts
    exactly_equal(contract_from_document(contract.document()), contract)
    assert contract.cross_collateralized is xc
    assert all(t.rate == rate / 100 for r in contract.rules for t in r.tiers)
    for r in contract.rules:
        assert sum(s.share for s in r.splits) == 1
        assert dict((s.payee_id, s.share) for s in r.splits) == {p: D(h) / 10_000 for p, h in zip(payees, hundredths)}


# --- 5. overlapping_contracts ---------------------------------------------------------------------------


def test_overlapping_contracts_none_when_disjoint_or_touching():
    a = make_contract("CT-A", date(2026, 1, 1), date(2026, 6, 30))
    b = make_contract("CT-B", date(2026, 7, 1), date(2026, 12, 31))
    assert overlapping_contracts([a, b]) is None
    assert overlapping_contracts([b, a]) is None
    assert overlapping_contracts([]) is None
    assert overlapping_contracts([a]) is None


def test_overlapping_contracts_reports_first_second_target_payee():
    a = make_contract("CT-A", date(2026, 1, 1), date(2026, 7, 1))
    b = make_contract("CT-B", date(2026, 7, 1), date(2026, 12, 31))
    assert overlapping_contracts([b, a]) == ("CT-A", "CT-B", "sku SKU-1", "pe-a")


def test_overlapping_contracts_contained_period():
    long = make_contract("CT-LONG", date(2026, 1, 1), date(2026, 12, 31))
    short = make_contract("CT-SHORT", date(2026, 3, 1), date(2026, 3, 31))
    later = make_contract("CT-LATER", date(2027, 1, 1), date(2027, 12, 31))
    assert overlapping_contracts([later, short, long]) == ("CT-LONG", "CT-SHORT", "sku SKU-1", "pe-a")


def test_overlapping_contracts_needs_same_target_and_payee():
    a = make_contract("CT-A", rules=[rule("r", "sku", "SKU-1", {"pe-a": "0.5", "pe-b": "0.5"})])
    other_payee = make_contract("CT-B", rules=[rule("r", "sku", "SKU-1", {"pe-c": "1"})])
    other_sku = make_contract("CT-C", rules=[rule("r", "sku", "SKU-2", {"pe-a": "1"})])
    same_id_as_asset = make_contract("CT-D", rules=[rule("r", "asset", "SKU-1", {"pe-a": "1"})])
    assert overlapping_contracts([a, other_payee, other_sku, same_id_as_asset]) is None
    shared = make_contract(
        "CT-E", date(2026, 12, 31), date(2027, 1, 31), rules=[rule("r", "sku", "SKU-1", {"pe-b": "1"})]
    )
    assert overlapping_contracts([a, other_payee, shared]) == ("CT-A", "CT-E", "sku SKU-1", "pe-b")


def test_a_contract_does_not_overlap_itself():
    twice = make_contract(
        "CT-A", rules=[rule("r1", "sku", "SKU-1", {"pe-a": "1"}), rule("r2", "sku", "SKU-1", {"pe-a": "1"})]
    )
    assert overlapping_contracts([twice]) is None
    other = make_contract("CT-B", date(2026, 12, 31), date(2027, 12, 31))
    assert overlapping_contracts([twice, other]) == ("CT-A", "CT-B", "sku SKU-1", "pe-a")


@st.composite
def contract_sets(draw):
    out = []
    for n in range(draw(st.integers(0, 5))):
        start = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 60)))
        end = start + timedelta(days=draw(st.integers(0, 30)))
        keys = draw(
            st.lists(
                st.tuples(st.sampled_from(["SKU-1", "SKU-2"]), st.sampled_from(["pe-a", "pe-b"])),
                min_size=1,
                max_size=3,
            )
        )
        out.append(
            make_contract(
                f"CT-{n}", start, end, rules=[rule(f"r{i}", "sku", sku, {p: "1"}) for i, (sku, p) in enumerate(keys)]
            )
        )
    return draw(st.permutations(out))


@given(contract_sets())
@settings(max_examples=300, deadline=None)
def test_overlapping_contracts_agrees_with_brute_force(cs):
    def covers(c):
        return {(f"{r.target_kind} {r.target_id}", s.payee_id) for r in c.rules for s in r.splits}

    def overlap(a, b):
        return a.effective_from <= b.effective_to and b.effective_from <= a.effective_to

    brute = [(a, b) for i, a in enumerate(cs) for b in cs[i + 1 :] if overlap(a, b) and covers(a) & covers(b)]
    found = overlapping_contracts(cs)
    assert (found is None) == (not brute)
    if found:
        first, second, target, payee = found
        by_ref = {c.reference: c for c in cs}
        a, b = by_ref[first], by_ref[second]
        assert first != second and overlap(a, b) and (target, payee) in covers(a) & covers(b)
        assert a.effective_from <= b.effective_from


# --- 6. rule_rows -------------------------------------------------------------------------------------------


def rows(period, contracts):
    return rule_rows(period, contracts).to_pylist()


@pytest.mark.parametrize(
    "period, expected",
    [
        ("2025-12", []),
        ("2026-01", ["CT-ADA-2026"]),
        ("2026-05", ["CT-ADA-2026"]),
        ("2026-06", ["CT-ADA-2026", "CT-CY-2026"]),
        ("2026-12", ["CT-ADA-2026", "CT-CY-2026"]),
        ("2027-01", ["CT-ADA-2026"]),
        ("2027-12", ["CT-ADA-2026"]),
        ("2028-01", []),
    ],
)
def test_rule_rows_only_contracts_in_force(period, expected):
    table = rule_rows(period, parse().contracts)
    assert sorted(set(table.column("contract_ref").to_pylist())) == expected
    assert set(table.column("period").to_pylist()) <= {period}


def test_rule_rows_contract_in_force_part_of_the_month():
    mid = make_contract("CT-MID", date(2026, 3, 15), date(2026, 3, 15))
    ends = make_contract("CT-END", date(2025, 1, 1), date(2026, 3, 1))
    starts = make_contract("CT-START", date(2026, 3, 31), date(2027, 1, 1))
    assert [r["contract_ref"] for r in rows("2026-03", [mid, ends, starts])] == ["CT-MID", "CT-END", "CT-START"]
    assert rows("2026-02", [mid, starts]) == []
    assert rows("2026-04", [mid, ends]) == []


def test_rule_rows_one_row_per_rule_and_payee():
    ada, cy = parse().contracts
    got = [(r["rule_id"], r["payee_id"], r["payee_rank"], r["share"]) for r in rows("2026-06", [ada, cy])]
    assert got == [
        ("CT-ADA-2026/book", "pe-ada", 1, D("0.8")),
        ("CT-ADA-2026/book", "pe-bob", 2, D("0.2")),
        ("CT-ADA-2026/video", "pe-ada", 1, D("0.8")),
        ("CT-ADA-2026/video", "pe-bob", 2, D("0.2")),
        ("CT-CY-2026/album", "pe-cy", 1, D(1)),
    ]
    first = rows("2026-06", [ada])[0]
    assert first["contract_version"] == ada.version
    assert first["rule_version"] == ada.rule_version(ada.rules[0])
    assert first["account_id"] == "pe-ada:CT-ADA-2026"
    assert (first["target_kind"], first["target_id"], first["base"], first["rate_basis"]) == (
        "sku",
        "SKU-BOOK-1",
        "net_sales",
        "units",
    )
    assert first["tier_start"] == [D(0), D(100)] and first["tier_rate"] == [D("0.1"), D("0.125")]
    assert first["deduction_per_unit"] == D("0.5")
    assert (first["currency"], first["territories"]) == ("USD", ["WW"])
    assert (first["effective_from"], first["effective_to"]) == (date(2026, 1, 1), date(2027, 12, 31))


def test_rule_rows_account_ids_for_cross_collateralised_contracts():
    xc = make_contract("CT-XC", cross_collateralized=True, creator="cr-9")
    assert [r["account_id"] for r in rows("2026-01", [xc])] == ["pe-a:xc:cr-9"]


def test_payee_rank_largest_share_first_ties_to_smaller_payee_id():
    c = make_contract(
        rules=[
            rule("tie", "sku", "SKU-1", {"pe-b": "0.5", "pe-a": "0.5"}),
            rule("three", "sku", "SKU-2", {"pe-c": "0.3", "pe-a": "0.3", "pe-b": "0.4"}),
            rule("ids", "sku", "SKU-3", {"pe-10": "0.25", "pe-9": "0.25", "pe-2": "0.5"}),
        ]
    )
    ranks = [(r["rule_id"], r["payee_id"], r["payee_rank"]) for r in rows("2026-01", [c])]
    assert ranks == [
        ("CT-1/tie", "pe-a", 1),
        ("CT-1/tie", "pe-b", 2),
        ("CT-1/three", "pe-b", 1),
        ("CT-1/three", "pe-a", 2),
        ("CT-1/three", "pe-c", 3),
        ("CT-1/ids", "pe-2", 1),
        ("CT-1/ids", "pe-10", 2),
        ("CT-1/ids", "pe-9", 3),  # ids compare as text
    ]


def test_rule_rows_arrow_types_are_decimal():
    table = rule_rows("2026-06", parse().contracts)
    dec = pa.decimal128(38, 10)
    assert table.schema.field("share").type == dec
    assert table.schema.field("deduction_per_unit").type == dec
    assert table.schema.field("tier_start").type == pa.list_(dec)
    assert table.schema.field("tier_rate").type == pa.list_(dec)
    assert table.schema.field("payee_rank").type == pa.uint16()
    assert table.schema.field("effective_from").type == pa.date32()
    for row in table.to_pylist():
        assert type(row["share"]) is Decimal and type(row["deduction_per_unit"]) is Decimal
        assert all(type(v) is Decimal for v in row["tier_start"] + row["tier_rate"])


def test_rule_rows_empty_period_keeps_the_schema():
    empty = rule_rows("2030-01", parse().contracts)
    assert empty.num_rows == 0
    assert empty.schema == rule_rows("2026-06", parse().contracts).schema


@given(catalog_texts())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rule_rows_shares_sum_to_exactly_one_and_ranks_are_ordered(drawn):
    text, payees, hundredths, rate, xc = drawn
    (contract,) = parse(text).contracts
    table = rule_rows(contract.effective_from.isoformat()[:7], [contract])
    by_rule = defaultdict(list)
    for row in table.to_pylist():
        by_rule[row["rule_id"]].append(row)
    assert set(by_rule) == {"CT-1/flat", "CT-1/tiered"}
    for _rule_id, rule_rows_ in by_rule.items():
        assert len(rule_rows_) == len(payees)
        assert sum(r["share"] for r in rule_rows_) == 1
        assert all(type(r["share"]) is Decimal for r in rule_rows_)
        ranked = sorted(rule_rows_, key=lambda r: r["payee_rank"])
        assert [r["payee_rank"] for r in ranked] == list(range(1, len(payees) + 1))
        assert [(-r["share"], r["payee_id"]) for r in ranked] == sorted((-r["share"], r["payee_id"]) for r in ranked)
        assert {r["account_id"] for r in rule_rows_} == {contract.account_id(p) for p in payees}


@pytest.mark.parametrize(
    "period, first, last",
    [
        ("2026-01", date(2026, 1, 1), date(2026, 1, 31)),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        ("2026-04", date(2026, 4, 1), date(2026, 4, 30)),
        ("2026-11", date(2026, 11, 1), date(2026, 11, 30)),
        ("2026-12", date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_period_bounds(period, first, last):
    assert period_bounds(period) == (first, last)


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "26-01", "2026"])
def test_period_bounds_rejects_non_months(bad):
    with pytest.raises(ValueError):
        period_bounds(bad)


# --- 7. sales reports ---------------------------------------------------------------------------------------

SALES = Path("reports") / "sales-2026-10.csv"
HEADER = ",".join(SALES_COLUMNS)
GOOD = {
    "sale_id": "s-1",
    "revision": "0",
    "sold_at": "2026-10-01T12:00:00Z",
    "sku": "SKU-BOOK-1",
    "territory": "GB",
    "units": "2",
    "net_amount": "19.98",
    "currency": "EUR",
}


def csv_line(**changes) -> str:
    return ",".join({**GOOD, **changes}[c] for c in SALES_COLUMNS)


def test_parse_sales_good_file_with_returns():
    text = (
        "\n".join(
            [
                HEADER,
                csv_line(),
                csv_line(
                    sale_id="s-2",
                    revision="3",
                    sold_at="2026-10-02T09:30:00+02:00",
                    territory="US",
                    units="-1",
                    net_amount="-9.99",
                    currency="USD",
                ),
                csv_line(
                    sale_id=" s-3 ",
                    sku=" SKU-ALBUM-1 ",
                    sold_at="2026-10-31T23:59:59.123Z",
                    units="0",
                    net_amount="0.00",
                ),
            ]
        )
        + "\n"
    )
    sales = parse_sales_csv(SALES, text)
    assert [(s.sale_id, s.revision, s.sku, s.territory, s.units, s.net_amount, s.currency, s.line) for s in sales] == [
        ("s-1", 0, "SKU-BOOK-1", "GB", 2, D("19.98"), "EUR", 2),
        ("s-2", 3, "SKU-BOOK-1", "US", -1, D("-9.99"), "USD", 3),
        ("s-3", 0, "SKU-ALBUM-1", "GB", 0, D("0.00"), "EUR", 4),
    ]
    assert sales[0].sold_at == datetime(2026, 10, 1, 12, tzinfo=UTC)
    assert sales[1].sold_at == datetime(2026, 10, 2, 7, 30, tzinfo=UTC)  # converted to UTC
    assert sales[1].sold_at.utcoffset() == timedelta(0)
    assert sales[2].sold_at.microsecond == 123_000
    assert all(type(s.net_amount) is Decimal and type(s.units) is int for s in sales)
    assert str(sales[1].net_amount) == "-9.99"


def test_parse_sales_header_only_and_crlf():
    assert parse_sales_csv(SALES, HEADER + "\n") == []
    crlf = parse_sales_csv(SALES, HEADER + "\r\n" + csv_line() + "\r\n" + csv_line(sale_id="s-2") + "\r\n")
    assert [(s.sale_id, s.line, s.currency) for s in crlf] == [("s-1", 2, "EUR"), ("s-2", 3, "EUR")]


@pytest.mark.parametrize("column", SALES_COLUMNS)
def test_parse_sales_missing_column(column):
    header = ",".join(c for c in SALES_COLUMNS if c != column)
    with pytest.raises(SalesFileError) as info:
        parse_sales_csv(SALES, header + "\n")
    message = str(info.value)
    assert message.startswith(f"{SALES}:1: missing column {column!r}")
    assert HEADER in message  # says what the header must be


@pytest.mark.parametrize(
    "field, bad, hint",
    [
        ("sale_id", "", "must not be empty"),
        ("sale_id", "   ", "must not be empty"),
        ("revision", "one", "whole number >= 0"),
        ("revision", "-1", "whole number >= 0"),
        ("revision", "1.0", "whole number >= 0"),
        ("revision", "²", "whole number >= 0"),
        ("revision", "", "whole number >= 0"),
        ("sold_at", "2026-10-01T12:00:00", "needs a time zone"),
        ("sold_at", "2026-10-01", "needs a time zone"),
        ("sold_at", "yesterday", "RFC 3339"),
        ("sku", "", "must not be empty"),
        ("territory", "WW", "ISO 3166"),
        ("territory", "gb", "ISO 3166"),
        ("territory", "Gb", "ISO 3166"),
        ("territory", "GBR", "ISO 3166"),
        ("territory", "G1", "ISO 3166"),
        ("territory", "ÄB", "ISO 3166"),
        ("territory", "", "ISO 3166"),
        ("units", "1.5", "whole number"),
        ("units", "two", "whole number"),
        ("units", "", "whole number"),
        ("net_amount", "abc", "decimal number"),
        ("net_amount", "1,5", "decimal number"),
        ("net_amount", "", "decimal number"),
        ("net_amount", "NaN", "finite"),
        ("net_amount", "Infinity", "finite"),
        ("currency", "XYZ", "ISO 4217"),
        ("currency", "eur", "ISO 4217"),
        ("currency", "", "ISO 4217"),
    ],
)
def test_parse_sales_bad_field_names_file_line_and_field(field, bad, hint):
    value = f'"{bad}"' if "," in bad else bad
    line = csv_line(**{field: value})
    text = "\n".join([HEADER, csv_line(), csv_line(sale_id="s-2"), line, csv_line(sale_id="s-4")]) + "\n"
    expected_line = text.splitlines().index(line) + 1
    assert expected_line == 4
    with pytest.raises(SalesFileError) as info:
        parse_sales_csv(SALES, text)
    message = str(info.value)
    assert message.startswith(f"{SALES}:{expected_line}: field {field!r} "), message
    assert hint in message
    assert f"(got {bad!r})" in message


def test_parse_sales_short_row_names_the_first_missing_field():
    text = HEADER + "\n" + csv_line() + "\ns-2,0,2026-10-01T12:00:00Z,SKU-1,GB,1\n"
    with pytest.raises(
        SalesFileError, match=rf"^{re.escape(str(SALES))}:3: field 'net_amount' must be a decimal number"
    ):
        parse_sales_csv(SALES, text)


def test_parse_sales_line_numbers_are_lines_of_the_file():
    """A blank line or a quoted multi-line field must not shift every later error to the wrong line."""
    bad = csv_line(sale_id="s-9", units="x")
    text = HEADER + "\n" + csv_line() + "\n\n" + csv_line(sale_id="s-2") + "\n" + bad + "\n"
    sales_line = text.splitlines().index(csv_line(sale_id="s-2")) + 1
    assert [s.line for s in parse_sales_csv(SALES, text.replace(bad + "\n", ""))] == [2, sales_line]
    with pytest.raises(SalesFileError) as info:
        parse_sales_csv(SALES, text)
    assert str(info.value).startswith(f"{SALES}:{text.splitlines().index(bad) + 1}: field 'units' ")


def test_parse_sales_unreadable_csv_names_file_and_line():
    """A lone carriage return (a file saved by an old Mac tool, or pasted into a field) is an error the user can
    fix, not a crash."""
    text = HEADER + "\n" + csv_line() + "\n" + csv_line(sku="SKU\rBOOK") + "\n"
    with pytest.raises(SalesFileError, match=rf"^{re.escape(str(SALES))}:3: new-line character seen in unquoted field"):
        parse_sales_csv(SALES, text)


def test_parse_sales_line_numbers_after_a_quoted_multi_line_field():
    bad = csv_line(sale_id="s-9", currency="XYZ")
    text = HEADER + "\n" + csv_line(sku='"SKU\nBOOK"') + "\n" + bad + "\n"
    assert text.splitlines().index(bad) + 1 == 4
    with pytest.raises(SalesFileError, match=rf"^{re.escape(str(SALES))}:4: field 'currency' "):
        parse_sales_csv(SALES, text)


def test_only_currencies_a_period_converts_between_need_an_fx_rate():
    rules = rule_rows("2026-06", parse().contracts)  # CT-ADA-2026 in USD (SKU-BOOK-1, asset-0037), CT-CY-2026 in EUR
    as_catalog = {"pe-ada": "EUR", "pe-bob": "EUR", "pe-cy": "EUR"}
    assert currencies_to_convert(rules, as_catalog, set(), set()) == {"USD", "EUR"}  # a USD contract pays in EUR
    same = {**as_catalog, "pe-ada": "USD", "pe-bob": "USD"}
    assert currencies_to_convert(rules, same, {("SKU-BOOK-1", "USD"), ("SKU-ALBUM-1", "EUR")}, set()) == set()
    assert currencies_to_convert(rules, same, {("SKU-ALBUM-1", "GBP"), ("SKU-OTHER", "JPY")}, set()) == {"GBP", "EUR"}
    assert currencies_to_convert(rules, same, set(), {("asset-0037", "EUR"), ("asset-9", "JPY")}) == {"EUR", "USD"}
