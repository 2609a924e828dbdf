"""The royalty statement engine: docs/royalty_statements.md, step by step, as pure functions.

A statement is per payee and month, in the payee's currency. Each account (a contract, or a
cross-collateralised group of contracts) carries its own state from month to month; `period_statement`
turns a state and a month's activity into a statement line and `next_state` into the next month's state.
No I/O and no Dagster: the same inputs always give the same statement, to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext

from mm_pipelines.events.event_schema import CURRENCIES
from mm_pipelines.royalties.money import add_months, allocate, convert, round_money, validate_period

ZERO = Decimal("0.00")
BELOW_THRESHOLD = "below threshold"
NEGATIVE_BALANCE = "negative balance"


class StatementError(ValueError):
    """Bad statement input: the message names the field (or the missing rate) and what is wrong."""


@dataclass(frozen=True)
class PayeeTerms:
    payee_id: str
    currency: str  # ISO 4217, the statement and payout currency
    threshold: Decimal = Decimal(0)  # minimum payout; a smaller positive total is carried forward
    withholding_rate: Decimal = Decimal(0)  # fraction 0..1 withheld for tax from what is paid
    hold: str = (
        ""  # why the payout is held (KYC, no bank details): its net is `held`, not paid, and returns next period
    )


@dataclass(frozen=True)
class AccountTerms:
    account_id: str
    minimum_guarantee: Decimal = Decimal(0)  # per period, payee currency; top-ups are recoupable
    reserve_rate: Decimal = Decimal(0)  # fraction 0..1 of positive period earnings held against returns
    reserve_release_after: int = 1  # periods after the holding period when the first installment is released
    reserve_installments: int = 1  # equal installments (cents split by money.allocate, remainder to the earliest)
    already_withheld: bool = False  # holds only returned payouts, which were withheld when earned: never withheld again


@dataclass(frozen=True)
class AccountState:
    """What an account carries into a period."""

    carried: Decimal = Decimal(0)  # balance carried forward (negative, or positive below threshold)
    unrecouped: Decimal = Decimal(0)  # advances + minimum-guarantee top-ups not yet recouped (>= 0)
    reserves: tuple[tuple[str, Decimal], ...] = ()  # scheduled releases (period, amount), sorted


@dataclass(frozen=True)
class AccountActivity:
    """What happened in the period."""

    earnings: Mapping[str, Decimal] = field(default_factory=dict)  # exact ledger royalty totals by currency
    advances: Decimal = Decimal(0)  # advances paid this period (payee currency); only raise `unrecouped`
    returned: Decimal = Decimal(0)  # earlier payouts that failed or were held (net of withholding), back on the balance


@dataclass(frozen=True)
class AccountLine:
    account_id: str
    opening: Decimal
    returned: Decimal
    earnings: Decimal
    reserve_held: Decimal
    reserve_released: Decimal
    advances: Decimal
    unrecouped_in: Decimal
    recouped: Decimal
    mg_topup: Decimal
    balance: Decimal
    paid: Decimal
    held: Decimal  # payable but not paid (PayeeTerms.hold): returns on the payments account next period
    withheld: Decimal
    carried_out: Decimal
    unrecouped_out: Decimal
    reserves_out: tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True)
class Statement:
    period: str
    payee_id: str
    currency: str
    lines: tuple[AccountLine, ...]
    earnings: Decimal
    payable_gross: Decimal
    withheld: Decimal
    paid: Decimal
    held: Decimal
    held_reason: str
    carried_out: Decimal
    carried_reason: str


def period_statement(
    period: str,
    payee: PayeeTerms,
    accounts: Sequence[tuple[AccountTerms, AccountState, AccountActivity]],
    rates: Mapping[str, Decimal],
) -> Statement:
    """One payee's statement for one month; lines in the order of `accounts`."""
    _check_inputs(period, payee, accounts)
    for currency in rates:  # every rate given must be valid, the ones this statement does not convert with too
        _rate(rates, currency, period)
    with localcontext() as ctx:
        ctx.prec = 40  # every intermediate sum of cents stays exact; only round_money rounds
        unpaid = [_account_line(period, payee, *account, rates) for account in accounts]
        weights = [max(b.balance, ZERO) for b in unpaid]
        taxable = [ZERO if terms.already_withheld else w for (terms, _, _), w in zip(accounts, weights)]
        payable_gross = sum(weights, ZERO)
        nothing = [ZERO] * len(unpaid)
        if payable_gross > 0 and payable_gross >= payee.threshold:
            withheld = round_money(sum(taxable, ZERO) * payee.withholding_rate)
            withheld_parts = allocate(withheld, taxable) if withheld else nothing
            # paid (or held) per account is the rest of its positive balance, so every line conserves on its own
            net_parts = [w - h for w, h in zip(weights, withheld_parts)]
            paid_parts, held_parts = (nothing, net_parts) if payee.hold else (net_parts, nothing)
            carried_parts = [min(b.balance, ZERO) for b in unpaid]
            reason = ""
        else:
            withheld = ZERO
            withheld_parts = paid_parts = held_parts = nothing
            carried_parts = [b.balance for b in unpaid]
            reason = BELOW_THRESHOLD if payable_gross > 0 else ""
        if not reason and any(c < 0 for c in carried_parts):
            reason = NEGATIVE_BALANCE
        lines = tuple(
            replace(b, paid=paid, held=held, withheld=tax, carried_out=carried)
            for b, paid, held, tax, carried in zip(unpaid, paid_parts, held_parts, withheld_parts, carried_parts)
        )
        return Statement(
            period=period,
            payee_id=payee.payee_id,
            currency=payee.currency,
            lines=lines,
            earnings=sum((line.earnings for line in lines), ZERO),
            payable_gross=payable_gross,
            withheld=withheld,
            paid=sum(paid_parts, ZERO),
            held=sum(held_parts, ZERO),
            held_reason=payee.hold if any(held_parts) else "",
            carried_out=sum(carried_parts, ZERO),
            carried_reason=reason,
        )


def next_state(line: AccountLine) -> AccountState:
    """What the account carries into the next period."""
    return AccountState(carried=line.carried_out, unrecouped=line.unrecouped_out, reserves=line.reserves_out)


def run_periods(
    payee: PayeeTerms,
    terms_by_account: Mapping[str, AccountTerms],
    activities_by_period: Mapping[str, Mapping[str, AccountActivity]],
    rates_by_period: Mapping[str, Mapping[str, Decimal]],
    first_state: Mapping[str, AccountState] | None = None,
) -> list[Statement]:
    """Statements for every month from the first to the last period given, each state chained to the next.

    A month missing from `activities_by_period`, or an account missing from a month, has no activity, so
    reserves still fall due on schedule. Lines follow the order of `terms_by_account`.
    """
    if not activities_by_period:
        return []
    for account_id, terms in terms_by_account.items():
        if terms.account_id != account_id:
            raise StatementError(f"terms_by_account[{account_id!r}] holds the terms of {terms.account_id!r}")
    for period, activities in activities_by_period.items():
        _period(period, "activities_by_period")
        unknown = sorted(set(activities) - set(terms_by_account))
        if unknown:
            raise StatementError(f"activities_by_period[{period!r}] names unknown accounts {unknown}")
    first, last = min(activities_by_period), max(activities_by_period)
    states = {a: (first_state or {}).get(a, AccountState()) for a in terms_by_account}
    statements = []
    period = first
    while period <= last:
        activities = activities_by_period.get(period, {})
        accounts = [(terms, states[a], activities.get(a, AccountActivity())) for a, terms in terms_by_account.items()]
        statement = period_statement(period, payee, accounts, rates_by_period.get(period, {}))
        states = {line.account_id: next_state(line) for line in statement.lines}
        statements.append(statement)
        period = add_months(period, 1)
    return statements


def _account_line(
    period: str,
    payee: PayeeTerms,
    terms: AccountTerms,
    state: AccountState,
    activity: AccountActivity,
    rates: Mapping[str, Decimal],
) -> AccountLine:
    """Steps 1-10 for one account; the payout split (paid, withheld, carried_out) is filled in per payee."""
    earnings = round_money(
        sum(
            (
                amount
                if currency == payee.currency  # no conversion, so no rate needed
                else convert(amount, _rate(rates, currency, period), _rate(rates, payee.currency, period))
                for currency, amount in sorted(activity.earnings.items())
            ),
            ZERO,
        )
    )
    released = sum((amount for due, amount in state.reserves if due <= period), ZERO)
    held = round_money(max(earnings, ZERO) * terms.reserve_rate)
    schedule = [(due, amount) for due, amount in state.reserves if due > period]
    if held > 0:
        installments = allocate(held, [Decimal(1)] * terms.reserve_installments)
        schedule += [
            (add_months(period, terms.reserve_release_after + i), amount)
            for i, amount in enumerate(installments)
            if amount > 0
        ]
    unrecouped_in = state.unrecouped + activity.advances
    pre = state.carried + activity.returned + earnings - held + released
    mg = terms.minimum_guarantee
    recouped = min(unrecouped_in, max(ZERO, pre - mg))
    after = pre - recouped
    mg_topup = max(ZERO, mg - after) if mg > 0 else ZERO
    return AccountLine(
        account_id=terms.account_id,
        opening=state.carried,
        returned=activity.returned,
        earnings=earnings,
        reserve_held=held,
        reserve_released=released,
        advances=activity.advances,
        unrecouped_in=unrecouped_in,
        recouped=recouped,
        mg_topup=mg_topup,
        balance=after + mg_topup,
        paid=ZERO,
        held=ZERO,
        withheld=ZERO,
        carried_out=ZERO,
        unrecouped_out=unrecouped_in - recouped + mg_topup,
        reserves_out=_merge(schedule),
    )


def _merge(schedule: list[tuple[str, Decimal]]) -> tuple[tuple[str, Decimal], ...]:
    """One release per period, sorted: the carried schedule stays canonical however holds overlap."""
    by_period: dict[str, Decimal] = {}
    for due, amount in schedule:
        by_period[due] = by_period.get(due, ZERO) + amount
    return tuple(sorted(by_period.items()))


def _rate(rates: Mapping[str, Decimal], currency: str, period: str) -> Decimal:
    if currency not in rates:
        raise StatementError(f"no exchange rate for {currency} in period {period}")
    rate = rates[currency]
    _check_decimal(f"rates[{currency!r}]", rate)
    if rate <= 0:
        raise StatementError(f"rates[{currency!r}] must be > 0, got {rate}")
    return rate


def _check_inputs(period: str, payee: PayeeTerms, accounts: Sequence) -> None:
    _period(period)
    if payee.currency not in CURRENCIES:
        raise StatementError(f"payee.currency {payee.currency!r} is not an ISO 4217 currency code")
    _check_decimal("payee.threshold", payee.threshold, nonnegative=True)
    _check_fraction("payee.withholding_rate", payee.withholding_rate)
    if not isinstance(payee.hold, str):
        raise StatementError(f"payee.hold must be text (why the payout is held, or empty), got {payee.hold!r}")
    ids = [terms.account_id for terms, _, _ in accounts]
    if len(set(ids)) != len(ids):
        raise StatementError(f"account ids must be unique on a statement, got {ids}")
    for terms, state, activity in accounts:
        name = terms.account_id
        _check_cents(f"{name}: minimum_guarantee", terms.minimum_guarantee, nonnegative=True)
        _check_fraction(f"{name}: reserve_rate", terms.reserve_rate)
        for attr in ("reserve_release_after", "reserve_installments"):
            value = getattr(terms, attr)
            if type(value) is not int or value < 1:
                raise StatementError(f"{name}: {attr} must be an integer >= 1, got {value!r}")
        _check_cents(f"{name}: state.carried", state.carried)
        _check_cents(f"{name}: state.unrecouped", state.unrecouped, nonnegative=True)
        for due, amount in state.reserves:
            _period(due, f"{name}: state.reserves period")
            _check_cents(f"{name}: state.reserves[{due!r}]", amount, nonnegative=True)
        if list(state.reserves) != sorted(state.reserves):
            raise StatementError(f"{name}: state.reserves must be sorted by period")
        _check_cents(f"{name}: activity.advances", activity.advances, nonnegative=True)
        _check_cents(f"{name}: activity.returned", activity.returned, nonnegative=True)
        _check_withheld_once(terms, state, activity)
        for currency, amount in activity.earnings.items():
            if currency not in CURRENCIES:
                raise StatementError(f"{name}: activity.earnings currency {currency!r} is not ISO 4217")
            _check_decimal(f"{name}: activity.earnings[{currency!r}]", amount)


def _check_withheld_once(terms: AccountTerms, state: AccountState, activity: AccountActivity) -> None:
    """Returned payouts were withheld when earned; kept on their own account, they can never be withheld again."""
    name = terms.account_id
    if activity.returned and not terms.already_withheld:
        raise StatementError(
            f"{name}: activity.returned is already net of withholding: "
            "return it on an account with already_withheld=True"
        )
    if terms.already_withheld:
        for field_name, value in (
            ("minimum_guarantee", terms.minimum_guarantee),
            ("reserve_rate", terms.reserve_rate),
            ("state.unrecouped", state.unrecouped),
            ("state.reserves", state.reserves),
            ("activity.advances", activity.advances),
            ("activity.earnings", {c: a for c, a in activity.earnings.items() if a}),
        ):
            if value:
                raise StatementError(
                    f"{name}: {field_name} must be empty on an already_withheld account "
                    "(it holds returned payouts only)"
                )


def _period(period: str, what: str = "period") -> str:
    """`validate_period`, raising StatementError so callers catch one error type."""
    try:
        return validate_period(period)
    except ValueError as e:
        raise StatementError(f"{what}: {e}") from None


def _check_decimal(name: str, value, nonnegative: bool = False) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise StatementError(f"{name} must be a finite Decimal, got {value!r}")
    if nonnegative and value < 0:
        raise StatementError(f"{name} must be >= 0, got {value}")


def _check_cents(name: str, value, nonnegative: bool = False) -> None:
    _check_decimal(name, value, nonnegative)
    if value != round_money(value):
        raise StatementError(f"{name} must be a whole number of cents, got {value}")


def _check_fraction(name: str, value) -> None:
    _check_decimal(name, value, nonnegative=True)
    if value > 1:
        raise StatementError(f"{name} must be a fraction between 0 and 1, got {value}")
