"""Money arithmetic for royalty statements: one rounding rule, exact splits, periods and FX.

docs/royalty_statements.md says where each of these is used; everything here is Decimal, never float.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from math import floor

CENT = Decimal("0.01")
_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def round_money(amount: Decimal, quantum: Decimal = CENT) -> Decimal:
    """Round half away from zero (ROUND_HALF_UP): commercial rounding, what payees and auditors recompute."""
    return amount.quantize(quantum, rounding=ROUND_HALF_UP)


def allocate(total: Decimal, weights: Sequence[Decimal], quantum: Decimal = CENT) -> list[Decimal]:
    """Split `total` in proportion to `weights` by largest remainder, so the parts sum to `total` exactly.

    Each exact share is floored to the quantum; the leftover quanta go one each to the largest remainders,
    ties to the earlier index. A negative total is split as its absolute value and negated (symmetric).
    """
    if quantum <= 0:
        raise ValueError(f"quantum must be > 0, got {quantum}")
    units = total / quantum
    if units != units.to_integral_value():
        raise ValueError(f"total {total} is not a multiple of {quantum}")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0, got {list(weights)}")
    exact_weights = [Fraction(w) for w in weights]
    weight_sum = sum(exact_weights)
    if weight_sum == 0:
        raise ValueError("at least one weight must be > 0")
    if len(weights) == 1:  # one account, the usual statement: all of it, without the remainder arithmetic
        return [Decimal(int(units)) * quantum]
    sign = -1 if units < 0 else 1
    count = abs(int(units))
    shares = [count * w / weight_sum for w in exact_weights]
    parts = [floor(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in by_remainder[: count - sum(parts)]:
        parts[i] += 1
    return [Decimal(sign * p) * quantum for p in parts]


def validate_period(period: str) -> str:
    """A statement period is a calendar month written 'YYYY-MM'."""
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise ValueError(f"period {period!r} is not a month written 'YYYY-MM' (e.g. '2025-01')")
    return period


def add_months(period: str, n: int) -> str:
    """The period `n` months after (or before, for negative n) `period`."""
    year, month = validate_period(period).split("-")
    index = int(year) * 12 + int(month) - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def convert(amount: Decimal, from_rate: Decimal, to_rate: Decimal) -> Decimal:
    """`amount` from currency A to B, rates being reporting-currency units per 1 unit (rate_to_reporting).

    Computed with 40 significant digits and not rounded: callers sum converted amounts and round once.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"exchange rates must be > 0, got {from_rate} and {to_rate}")
    with localcontext() as ctx:
        ctx.prec = 40
        return amount * from_rate / to_rate
