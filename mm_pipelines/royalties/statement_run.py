"""One period's statements for every payee: ledger totals + contract terms + last period's state → engine.

Reads the ledger and the previous statements from ClickHouse and the terms from Postgres, runs the pure
statement engine, and writes royalty.statement_lines (ClickHouse, for analysts) and per-payee totals
(Postgres, where payout batches are drafted and approved). A period's statements are final once a payout
batch exists for it, and a closed period is never recomputed.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pyarrow as pa

from mm_pipelines.royalties import batches
from mm_pipelines.royalties.contracts import Contract
from mm_pipelines.royalties.money import convert, round_money
from mm_pipelines.royalties.statements import (
    AccountActivity,
    AccountState,
    AccountTerms,
    PayeeTerms,
    Statement,
    period_statement,
)
from mm_pipelines.royalties.store import period_status, stored_contracts
from mm_pipelines.royalties.warehouse import period_bounds
from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.warehouse_tables import ensure_tables

DEC = pa.decimal128(38, 10)
# A statement line's amounts, in royalty.statement_lines' column order (each a Decimal attribute of the line).
LINE_AMOUNTS = (
    "opening",
    "returned",
    "earnings",
    "reserve_held",
    "reserve_released",
    "advances",
    "unrecouped_in",
    "recouped",
    "mg_topup",
    "balance",
    "paid",
    "held",
    "withheld",
    "carried_out",
    "unrecouped_out",
)


def payments_account(payee_id: str) -> str:
    """Failed and held payouts come back on their own account: they were earned under no single contract, and were
    withheld when earned, so this account is never withheld again."""
    return f"{payee_id}:payments"


@dataclass
class PeriodResult:
    statements: list[Statement]
    skipped: str = ""  # why nothing was computed (closed, or already paid)
    versions: dict = field(default_factory=dict)  # (payee, account) → contract@version that produced the lines


def account_terms(period: str, contracts: list[Contract]) -> dict[str, dict[str, AccountTerms]]:
    """payee → account → terms for the contracts in force. A cross-collateralised account takes the sum of
    its contracts' guarantees and the reserve terms of its first contract by reference."""
    first, last = period_bounds(period)
    out: dict[str, dict[str, AccountTerms]] = defaultdict(dict)
    for c in sorted(contracts, key=lambda c: c.reference):
        if c.effective_to < first or c.effective_from > last:
            continue
        payees = {s.payee_id for r in c.rules for s in r.splits}
        guarantees = dict(c.minimum_guarantees)
        for payee in sorted(payees):
            account = c.account_id(payee)
            mg = guarantees.get(payee, Decimal(0))
            known = out[payee].get(account)
            if known:
                out[payee][account] = AccountTerms(
                    account,
                    known.minimum_guarantee + mg,
                    known.reserve_rate,
                    known.reserve_release_after,
                    known.reserve_installments,
                )
            else:
                out[payee][account] = AccountTerms(
                    account, mg, c.reserve_rate, c.reserve_release_after, c.reserve_installments
                )
    return out


def _previous_states(session: Session, period: str) -> dict[tuple[str, str], AccountState]:
    rows = session.query_rows(
        """SELECT payee_id, account_id, toString(argMax(carried_out, period)), toString(argMax(unrecouped_out, period)),
                  arrayMap(r -> (r.1, toString(r.2)), argMax(reserves_out, period))
           FROM royalty.statement_lines WHERE period < {p:String} GROUP BY payee_id, account_id""",
        {"p": period},
    )
    return {
        (payee, account): AccountState(
            Decimal(carried), Decimal(unrecouped), tuple((p, Decimal(a)) for p, a in reserves)
        )
        for payee, account, carried, unrecouped, reserves in rows
    }


def _earnings(session: Session, period: str) -> tuple[dict, dict]:
    rows = session.query_rows(
        """SELECT payee_id, account_id, currency, toString(sum(royalty_amount)),
                  arraySort(groupUniqArray(concat(contract_ref, '@', contract_version)))
           FROM marts.royalty_ledger WHERE period = {p:String} GROUP BY payee_id, account_id, currency""",
        {"p": period},
    )
    earnings: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    versions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for payee, account, currency, total, used in rows:
        earnings[(payee, account)][currency] = Decimal(total)
        versions[(payee, account)].update(used)
    return earnings, versions


def compute_period(conn: psycopg.Connection, session: Session, period: str) -> PeriodResult:
    if period_status(conn, period) == "closed":
        return PeriodResult([], f"period {period} is closed: its statements are final")
    paid = conn.execute(
        "SELECT batch_id FROM payout_batches WHERE period = %s AND status <> 'cancelled' LIMIT 1", (period,)
    ).fetchone()
    if paid:
        return PeriodResult([], f"batch {paid[0]} exists for {period}: its statements are final")
    ensure_tables(session)
    if not session.scalar("EXISTS TABLE marts.royalty_ledger"):
        raise LookupError(f"marts.royalty_ledger does not exist yet: post the ledger (`mm royalties run {period}`)")
    contracts = stored_contracts(conn)
    terms = account_terms(period, contracts)
    rates = {
        c: Decimal(r)
        for c, r in conn.execute("SELECT currency, rate_to_reporting FROM period_fx_rates WHERE period = %s", (period,))
    }
    payees = {  # a payee who cannot be paid now (KYC, no bank details) has the payout held on the statement itself
        pid: PayeeTerms(pid, cur, Decimal(threshold), Decimal(wht), batches.hold_reason(kyc, method) or "")
        for pid, cur, threshold, wht, kyc, method in conn.execute(
            "SELECT payee_id, currency, threshold, withholding_rate, kyc_status, payout_method FROM payees"
        )
    }
    states = _previous_states(session, period)
    earnings, versions = _earnings(session, period)
    first, last = period_bounds(period)
    for c in contracts:  # terms in force explain a statement even without sales (a guarantee, say)
        if c.effective_from <= last and c.effective_to >= first:
            for payee in {s.payee_id for r in c.rules for s in r.splits}:
                versions[(payee, c.account_id(payee))].add(f"{c.reference}@{c.version}")
    advances: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for c in contracts:
        for a in c.advances:
            if first <= a.paid_on <= last and a.payee_id in payees:
                payee_currency = payees[a.payee_id].currency
                amount = (
                    a.amount
                    if c.currency == payee_currency
                    else round_money(convert(a.amount, rates[c.currency], rates[payee_currency]))
                )
                advances[(a.payee_id, c.account_id(a.payee_id))] += amount
    returned = batches.returned_amounts(conn, period)

    accounts: dict[str, set[str]] = defaultdict(set)
    for payee, account in [*states, *earnings, *advances]:
        accounts[payee].add(account)
    for payee, by_account in terms.items():
        accounts[payee].update(a for a, t in by_account.items() if t.minimum_guarantee)
    for payee, _ in returned:
        accounts[payee].add(payments_account(payee))

    statements = []
    for payee_id in sorted(accounts):
        payee = payees.get(payee_id)
        if payee is None:
            continue  # only possible if a payee was deleted by hand; their lines stay in the ledger
        inputs = []
        for account in sorted(accounts[payee_id]):
            state = states.get((payee_id, account), AccountState())
            activity = AccountActivity(
                earnings=earnings.get((payee_id, account), {}),
                advances=advances.get((payee_id, account), Decimal(0)),
                returned=returned.get((payee_id, payee.currency), Decimal(0))
                if account == payments_account(payee_id)
                else Decimal(0),
            )
            if account == payments_account(payee_id):
                account_terms_ = AccountTerms(account, already_withheld=True)
            else:
                account_terms_ = terms.get(payee_id, {}).get(account, AccountTerms(account))
            if state == AccountState() and activity == AccountActivity() and not account_terms_.minimum_guarantee:
                continue
            inputs.append((account_terms_, state, activity))
        if inputs:
            statements.append(period_statement(period, payee, inputs, rates))
    return PeriodResult(statements, versions=versions)


def write_period(conn: psycopg.Connection, session: Session, period: str, result: PeriodResult) -> int:
    """Replace the period's statement lines and totals (only ever called while the period is open and unpaid)."""
    statements, versions = result.statements, result.versions
    now = datetime.now(UTC)
    cols: dict[str, list] = defaultdict(list)
    for s in statements:
        for line in s.lines:
            for name in LINE_AMOUNTS:
                cols[name].append(getattr(line, name))
            cols["period"].append(period)
            cols["payee_id"].append(s.payee_id)
            cols["currency"].append(s.currency)
            cols["account_id"].append(line.account_id)
            cols["reserves_out"].append([(p, a) for p, a in line.reserves_out])
            cols["carried_reason"].append(s.carried_reason)
            cols["held_reason"].append(s.held_reason)
            cols["contract_versions"].append(sorted(versions.get((s.payee_id, line.account_id), ())))
            cols["computed_at"].append(now)
    session.command("ALTER TABLE royalty.statement_lines DROP PARTITION {p:String}", {"p": period})
    if cols:
        types = {
            "reserves_out": pa.list_(pa.struct([("1", pa.string()), ("2", DEC)])),
            "contract_versions": pa.list_(pa.string()),
            "computed_at": pa.timestamp("ms", "UTC"),
        }
        order = [
            *("period", "payee_id", "currency", "account_id"),
            *LINE_AMOUNTS,
            *("reserves_out", "carried_reason", "held_reason", "contract_versions", "computed_at"),
        ]
        text = ("period", "payee_id", "currency", "account_id", "carried_reason", "held_reason")
        table = pa.table({k: pa.array(cols[k], types.get(k, pa.string() if k in text else DEC)) for k in order})
        session.insert_arrow("royalty.statement_lines", table)
    conn.execute("DELETE FROM royalty_statement_totals WHERE period = %s", (period,))
    buf = io.StringIO()
    for s in statements:
        buf.write(
            "\t".join(
                [
                    period,
                    s.payee_id,
                    s.currency,
                    str(s.earnings),
                    str(s.paid),
                    str(s.held),
                    str(s.withheld),
                    str(s.carried_out),
                    s.carried_reason,
                    s.held_reason,
                ]
            )
            + "\n"
        )
    with conn.cursor().copy(
        "COPY royalty_statement_totals (period, payee_id, currency, earnings, paid, held, withheld, carried_out, "
        "carried_reason, held_reason) FROM STDIN"
    ) as copy:
        copy.write(buf.getvalue())
    return len(statements)
