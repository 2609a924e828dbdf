"""`mm royalties`, `mm payouts` and `mm audit`: contracts, statements and payout batches for Finance."""

from __future__ import annotations

import getpass
import html
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mm_pipelines.cli_support import UserError, console, err, open_platform, run_job
from mm_pipelines.config import Settings

royalties_app = typer.Typer(
    help="Creator royalties: contracts, sales, the ledger and statements.", no_args_is_help=True
)
sales_app = typer.Typer(help="Net sales reports for royalties.", no_args_is_help=True)
royalties_app.add_typer(sales_app, name="sales")
payouts_app = typer.Typer(help="Payout batches: draft, approve, export (signed), verify.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

Actor = Annotated[str, typer.Option("--by", help="Who does this (recorded in the audit log).")]
# A statement line's amounts, in the order a payee reads them: what came in, what was kept back, what went out.
STATEMENT_AMOUNTS = (
    "opening",
    "returned",
    "earnings",
    "reserve_held",
    "reserve_released",
    "advances",
    "recouped",
    "mg_topup",
    "balance",
    "withheld",
    "paid",
    "held",
    "carried_out",
    "unrecouped_out",
)


def _period(value: str, posting: bool = False) -> str:
    """A period argument; `posting` ones (run, close, create) must also be a month the ledger can post."""
    from mm_pipelines.royalties.money import validate_period

    try:
        period = validate_period(value)
    except ValueError as e:
        raise UserError(str(e), "give the period as YYYY-MM, e.g. 2026-10") from None
    if posting:
        from mm_pipelines.assets.partitions import royalty_periods

        first, last = royalty_periods()
        if period > last:
            raise UserError(
                f"period {period} has not started yet", f"give a period from {first} to {last} (the current month)"
            )
        if period < first:
            raise UserError(
                f"period {period} is before the first royalty period {first}", f"give a period from {first} to {last}"
            )
    return period


def _user() -> str:
    return getpass.getuser()


def _id_column(table: Table, name: str, ids: list[str]) -> None:
    """Ids are pasted into other commands (`mm payouts approve/export`): never wrapped or cut, however narrow the
    output; the other columns fold instead."""
    table.add_column(name, no_wrap=True, min_width=max((len(i) for i in ids), default=len(name)))


@royalties_app.command("load")
def royalties_load(
    file: Annotated[
        Path,
        typer.Argument(help="Catalog YAML: creators with payees, contracts with rules, licenses (docs/royalties.md)."),
    ],
    by: Actor = "",
) -> None:
    """Validate a catalog file whole and store it; contracts keep every version they had."""
    from mm_pipelines.royalties import bank_details
    from mm_pipelines.royalties.contracts import CatalogError, parse_catalog
    from mm_pipelines.royalties.store import save_catalog
    from mm_pipelines.stores.pii import PiiError

    if not file.exists():
        raise UserError(
            f"{file}: no such file", "give the path of a catalog YAML (see docs/examples/royalty_catalog.yml)"
        )
    settings = Settings.from_env()
    vault, digest_key = bank_details.vault(settings), bank_details.digest_key(settings)
    try:
        catalog = parse_catalog(file, file.read_text(encoding="utf-8"))
        with open_platform().metadata.connect() as conn:
            counts = save_catalog(conn, catalog, str(file), by or _user(), vault=vault, digest_key=digest_key)
    except CatalogError as e:
        raise UserError(str(e), "fix that field and load the file again (nothing was stored)") from None
    except PiiError as e:
        raise UserError(str(e), "load the file again once the PII vault answers (nothing was stored)") from None
    table = Table(title=f"Loaded {file}")
    for key in counts:
        table.add_column(key, justify="right")
    table.add_row(*(f"{v:,}" for v in counts.values()))
    console.print(table)


@sales_app.command(
    "load",
    help="Load a net sales report into raw.sales (returns are negative; a correction is the same sale_id, "
    "higher revision).",
)
def sales_load(
    file: Annotated[
        Path, typer.Argument(help="CSV: sale_id,revision,sold_at,sku,territory,units,net_amount,currency.")
    ],
) -> None:
    from mm_pipelines.royalties.warehouse import SalesFileError, load_sales_file

    if not file.exists():
        raise UserError(f"{file}: no such file", "give the path of a sales CSV")
    platform = open_platform()
    try:
        with platform.warehouse.session() as s:
            load_id, rows = load_sales_file(s, file, platform.objects)
    except SalesFileError as e:
        raise UserError(str(e), "fix that line of the report and load it again (nothing was loaded)") from None
    err.print(f"Loaded {rows:,} sales lines from {file} (load {load_id[:12]}); post them with: mm royalties run PERIOD")


@royalties_app.command("run")
def royalties_run(period: Annotated[str, typer.Argument(help="The period, YYYY-MM.")]) -> None:
    """Snapshot the contracts, post the period's ledger, compute its statements and draft its payout batches."""
    period = _period(period, posting=True)
    if not _royalty_inputs_staged() and not run_job(None, _royalty_inputs()):
        raise UserError("Staging the sales and FX rates failed", "see the step errors above, fix them and run again")
    if not run_job("royalties_job", partition_key=f"{period}-01"):
        raise UserError(
            f"The royalties run for {period} failed", "see the step errors above; `mm dev` shows the run's logs"
        )
    _print_statements(period)


def _royalty_inputs():
    from dagster import AssetKey, AssetSelection

    keys = (["staging", "stg_sales"], ["staging", "stg_fx_rates"], ["reference", "fx_rates"])
    return AssetSelection.assets(*(AssetKey(k) for k in keys))


def _royalty_inputs_staged() -> bool:
    """A royalties-only platform (no ad events, `mm materialize` never run) has not built what the ledger reads:
    the first `mm royalties run` builds it."""
    with open_platform().warehouse.session() as s:
        return all(s.scalar(f"EXISTS TABLE {t}") for t in ("staging.stg_sales", "staging.stg_fx_rates"))


@royalties_app.command("close")
def royalties_close(
    period: Annotated[str, typer.Argument(help="The period to close, YYYY-MM.")], by: Actor = ""
) -> None:
    """Close a period: its ledger and statements never change again; late sales post in the next open period."""
    from mm_pipelines.royalties.store import close_period

    period = _period(period, posting=True)
    with open_platform().metadata.connect() as conn:
        closed = close_period(conn, period, by or _user())
    err.print(f"Period {period} {'closed' if closed else 'was already closed'}.")


def _print_statements(period: str) -> None:
    with open_platform().metadata.connect() as conn:
        rows = conn.execute(
            """SELECT currency, count(*), sum(earnings), sum(paid), sum(held), sum(withheld), sum(carried_out),
                      count(*) FILTER (WHERE carried_reason = 'below threshold')
               FROM royalty_statement_totals WHERE period = %s GROUP BY currency ORDER BY currency""",
            (period,),
        ).fetchall()
        batches = conn.execute(
            "SELECT batch_id, currency, total, line_count, status FROM payout_batches "
            "WHERE period = %s ORDER BY batch_id",
            (period,),
        ).fetchall()
        holds = conn.execute(
            "SELECT count(*), coalesce(sum(amount), 0) FROM payout_holds WHERE period = %s", (period,)
        ).fetchone()
    table = Table(title=f"Royalty statements {period}")
    for name in ("currency", "payees", "earnings", "payable", "held", "withheld", "carried", "below threshold"):
        table.add_column(name, justify="left" if name == "currency" else "right")
    for cur, n, earn, paid, held, wht, carried, below in rows:
        table.add_row(
            cur,
            f"{n:,}",
            f"{earn:,.2f}",
            f"{paid:,.2f}",
            f"{held:,.2f}",
            f"{wht:,.2f}",
            f"{carried:,.2f}",
            f"{below:,}",
        )
    console.print(table)
    if batches:
        bt = Table(title="Payout batches")
        _id_column(bt, "batch", [b for b, *_ in batches])
        for name in ("currency", "total", "lines", "status"):
            bt.add_column(name, justify="right" if name in ("total", "lines") else "left", overflow="fold")
        for b, cur, total, n, status in batches:
            bt.add_row(b, cur, f"{total:,.2f}", f"{n:,}", status)
        console.print(bt)
    if holds[0]:
        err.print(f"{holds[0]:,} payee(s) held ({holds[1]:,.2f}): see `mm payouts holds {period}`")


@royalties_app.command("statement")
def royalties_statement(
    period: Annotated[str, typer.Argument(help="The period, YYYY-MM.")],
    payee: Annotated[str, typer.Argument(help="The payee id.")],
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a printable HTML statement to this file.")
    ] = None,
) -> None:
    """One payee's statement: every account line, the rule versions behind it and the ledger per rule."""
    period = _period(period)
    platform = open_platform()
    columns = ["account_id", "currency", *STATEMENT_AMOUNTS, "carried_reason", "held_reason", "contract_versions"]
    with platform.warehouse.session() as s:
        if not s.scalar("SELECT count() FROM system.tables WHERE database = 'royalty' AND name = 'statement_lines'"):
            raise UserError(
                f"No statements yet, so none for payee {payee!r} in {period}", f"run `mm royalties run {period}` first"
            )
        lines = [
            dict(zip(columns, r))
            for r in s.query_rows(
                f"SELECT {', '.join(columns)} FROM royalty.statement_lines "
                "WHERE period = {p:String} AND payee_id = {payee:String} ORDER BY account_id",
                {"p": period, "payee": payee},
            )
        ]
        ledger = s.query_rows(
            """SELECT rule_id, rule_version, rate_basis, tier_index, toString(rate_applied), count(), sum(units),
                      toString(sum(base_amount)), toString(sum(royalty_amount)), any(currency)
               FROM marts.royalty_ledger WHERE period = {p:String} AND payee_id = {payee:String}
               GROUP BY rule_id, rule_version, rate_basis, tier_index, rate_applied ORDER BY rule_id, tier_index""",
            {"p": period, "payee": payee},
        )
    if not lines:
        raise UserError(
            f"No statement for payee {payee!r} in {period}",
            f"run `mm royalties run {period}` first, or check the payee id",
        )
    table = Table(title=f"Statement {period} — {payee} ({lines[0]['currency']})")
    table.add_column("line")
    for line in lines:
        table.add_column(line["account_id"], justify="right")
    for name in STATEMENT_AMOUNTS:
        table.add_row(name.replace("_", " "), *(f"{Decimal(line[name]):,.2f}" for line in lines))
    table.add_row("terms", *(", ".join(line["contract_versions"]) for line in lines))
    console.print(table)
    lt = Table(title="Ledger lines behind it (contract currency)")
    for name in ("rule", "version", "basis", "tier", "rate", "lines", "units", "base", "royalty", "currency"):
        lt.add_column(
            name, justify="right" if name in ("lines", "units", "base", "royalty", "rate", "tier") else "left"
        )
    for r in ledger:
        lt.add_row(*(str(v) for v in r))
    console.print(lt)
    if lines[0]["carried_reason"]:
        err.print(f"carried forward: {lines[0]['carried_reason']}")
    if lines[0]["held_reason"]:
        err.print(f"held, not paid (returns next period): {lines[0]['held_reason']}")
    if html_file:
        html_file.write_text(_statement_html(period, payee, lines, ledger), encoding="utf-8")
        err.print(f"Wrote {html_file}")


def _statement_html(period: str, payee: str, lines: list[dict], ledger: list[tuple]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(line['account_id'])}</th>" for line in lines)
    body = "".join(
        f"<tr><td>{e(name.replace('_', ' '))}</td>"
        + "".join(f"<td class=n>{Decimal(line[name]):,.2f}</td>" for line in lines)
        + "</tr>"
        for name in STATEMENT_AMOUNTS
    )
    terms = "".join(f"<td>{e(', '.join(line['contract_versions']))}</td>" for line in lines)
    ledger_rows = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in ledger)
    return (
        f"""<!doctype html><html><head><meta charset="utf-8"><title>Royalty statement {e(period)} {e(payee)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:4px 8px}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}"""
        f"""</style></head><body>
<h1>Royalty statement {e(period)}</h1><p>Payee <b>{e(payee)}</b>, amounts in {e(lines[0]["currency"])}.
{e(lines[0]["carried_reason"] and "Carried forward: " + lines[0]["carried_reason"])}
{e(lines[0]["held_reason"] and "Held, not paid (returns next period): " + lines[0]["held_reason"])}</p>
<table><tr><th>line</th>{head}</tr>{body}<tr><td>terms (contract@version)</td>{terms}</tr></table>
<h2>Ledger lines behind it</h2><table><tr><th>rule</th><th>version</th><th>basis</th><th>tier</th>"""
        f"""<th>rate</th><th>lines</th>
<th>units</th><th>base</th><th>royalty</th><th>currency</th></tr>{ledger_rows}</table></body></html>
"""
    )


# --- payouts ----------------------------------------------------------------------------------------------


def _settings():
    from mm_pipelines.royalties.batches import BatchError, PayoutSettings

    try:
        return PayoutSettings.from_env()
    except BatchError as e:
        raise UserError(str(e), "fix the MM_PAYOUT_* variable") from None


def _lifecycle(step):
    """Run a lifecycle step in one transaction; its errors are the user's to act on."""
    from mm_pipelines.royalties.batches import BatchError
    from mm_pipelines.royalties.payouts import PayoutError
    from mm_pipelines.stores.pii import PiiError

    try:
        with open_platform().metadata.connect() as conn:
            return step(conn)
    except (BatchError, PayoutError, PiiError) as e:
        raise UserError(str(e)) from None


def _vault():
    """The PII vault the payees' bank details are read from (MM_PII_VAULT_URL, or the embedded one)."""
    from mm_pipelines.royalties.bank_details import vault

    return vault(Settings.from_env())


@payouts_app.command("create")
def payouts_create(period: Annotated[str, typer.Argument(help="The period, YYYY-MM.")], by: Actor = "") -> None:
    """Draft the period's payout batches on demand (the monthly run does this too); a retry finds the same batches."""
    from mm_pipelines.royalties.batches import create_batches

    period = _period(period, posting=True)
    vault = _vault()
    ids, holds = _lifecycle(lambda conn: create_batches(conn, period, by or _user(), vault=vault))
    for bid in ids:
        err.print(f"draft batch {bid}")
    for h in holds:
        err.print(f"held {h.payee_id} {h.amount} {h.currency}: {h.reason}")
    if not ids:
        err.print(f"No payable statements for {period}: run `mm royalties run {period}` first")


@payouts_app.command("list")
def payouts_list(format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table") -> None:
    """Every payout batch with its status and approvals."""
    if format not in ("table", "json"):
        raise UserError(f"--format {format!r} is not supported", "use --format table or json")
    rows = _lifecycle(
        lambda conn: conn.execute(
            """SELECT b.batch_id, b.period, b.currency, b.total, b.line_count, b.status, b.created_by,
                  coalesce(string_agg(a.approver, ', ' ORDER BY a.approver), '')
           FROM payout_batches b LEFT JOIN payout_approvals a USING (batch_id)
           GROUP BY b.batch_id ORDER BY b.period, b.batch_id"""
        ).fetchall()
    )
    if format == "json":
        keys = ("batch_id", "period", "currency", "total", "lines", "status", "created_by", "approved_by")
        print(json.dumps([dict(zip(keys, (*r[:3], str(r[3]), *r[4:]))) for r in rows], indent=2))
        return
    table = Table(title="Payout batches")
    _id_column(table, "batch", [r[0] for r in rows])
    for name in ("period", "currency", "total", "lines", "status", "created by", "approved by"):
        table.add_column(name, justify="right" if name in ("total", "lines") else "left", overflow="fold")
    for bid, period, cur, total, n, status, created, approvers in rows:
        table.add_row(bid, period, cur, f"{total:,.2f}", f"{n:,}", status, created, approvers)
    console.print(table)


@payouts_app.command("holds")
def payouts_holds(period: Annotated[str, typer.Argument(help="The period, YYYY-MM.")]) -> None:
    """Payees whose payout was held, and why (the amount returns to their balance next period)."""
    period = _period(period)
    rows = _lifecycle(
        lambda conn: conn.execute(
            "SELECT payee_id, currency, amount, reason, returned_period FROM payout_holds "
            "WHERE period = %s ORDER BY payee_id",
            (period,),
        ).fetchall()
    )
    table = Table(title=f"Held payouts {period}")
    for name in ("payee", "currency", "amount", "reason", "returns in"):
        table.add_column(name, justify="right" if name == "amount" else "left")
    for payee, cur, amount, reason, back in rows:
        table.add_row(payee, cur, f"{amount:,.2f}", reason, back)
    console.print(table)


@payouts_app.command("approve")
def payouts_approve(batch: Annotated[str, typer.Argument(help="The batch id.")], by: Actor = "") -> None:
    """Approve a draft batch (two distinct approvers above MM_PAYOUT_DUAL_APPROVAL_ABOVE; never its creator)."""
    from mm_pipelines.royalties.batches import approve

    settings = _settings()
    status, count, needed = _lifecycle(lambda conn: approve(conn, batch, by or _user(), settings))
    err.print(f"batch {batch}: {count} of {needed} approval(s), {status}")


@payouts_app.command("cancel")
def payouts_cancel(
    batch: Annotated[str, typer.Argument(help="The batch id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    by: Actor = "",
) -> None:
    """Cancel a draft or approved batch; the period's statements can then be recomputed and drafted again."""
    from mm_pipelines.royalties.batches import cancel

    _lifecycle(lambda conn: cancel(conn, batch, by or _user(), reason))
    err.print(f"batch {batch} cancelled; re-run `mm royalties run PERIOD` or `mm payouts create PERIOD` to draft again")


@payouts_app.command("recall")
def payouts_recall(
    batch: Annotated[str, typer.Argument(help="The batch id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    by: Actor = "",
) -> None:
    """Recall an exported batch before its execution date; its lines return to the balance in the next open period."""
    from mm_pipelines.royalties.batches import recall

    settings = _settings()
    back = _lifecycle(lambda conn: recall(conn, batch, by or _user(), reason, settings))
    err.print(f"batch {batch} recalled: tell the bank not to execute it; its lines return to the balance in {back}")


@payouts_app.command("export")
def payouts_export(batch: Annotated[str, typer.Argument(help="The batch id.")], by: Actor = "") -> None:
    """Write the approved batch's CSV, pain.001 (EUR) and signed manifest under finance/payouts/<batch>/."""
    from mm_pipelines.royalties.batches import export

    settings = _settings()
    objects, vault = open_platform().objects, _vault()
    keys = _lifecycle(lambda conn: export(conn, objects, batch, by or _user(), settings, vault=vault))
    for key in keys:
        err.print(f"wrote {key}")


@payouts_app.command(
    "verify",
    help="Check the export's Ed25519 signature and every file's SHA-256 "
    "(MM_PAYOUT_VERIFY_KEY, or the signing key's public half).",
)
def payouts_verify(batch: Annotated[str, typer.Argument(help="The batch id.")]) -> None:
    from mm_pipelines.royalties.batches import BatchError, signing_key, verify
    from mm_pipelines.royalties.payouts import PayoutError, public_key_text

    settings = _settings()
    try:
        key = settings.verify_key or public_key_text(signing_key(settings))
        problems = verify(open_platform().objects, batch, key)
    except (BatchError, PayoutError) as e:
        raise UserError(str(e)) from None
    if problems:
        for p in problems:
            err.print(f"[red]✗[/red] {p}")
        raise UserError(
            f"batch {batch}: the export does not verify",
            "do not send it; export the batch again and find out who changed it",
        )
    console.print(f"[green]✓[/green] batch {batch}: signature and every file's SHA-256 verify")


@payouts_app.command(
    "keygen",
    help="Print a new Ed25519 key pair for MM_PAYOUT_SIGNING_KEY / MM_PAYOUT_VERIFY_KEY "
    "(store the private key in Vault).",
)
def payouts_keygen() -> None:
    from mm_pipelines.royalties.payouts import generate_key_pair

    private, public = generate_key_pair()
    console.print(f"MM_PAYOUT_SIGNING_KEY={private}\nMM_PAYOUT_VERIFY_KEY={public}")


@payouts_app.command(
    "confirm",
    help="Post Finance's confirmation file now, and keep it under finance/confirmations/ "
    "(where the sensor would find it).",
)
def payouts_confirm(
    file: Annotated[Path, typer.Argument(help="Finance's confirmation CSV: batch_id,line_id,status,paid_on,reason.")],
    by: Actor = "",
) -> None:
    from mm_pipelines.royalties.batches import CONFIRMATION_PREFIX, post_confirmation
    from mm_pipelines.royalties.payouts import PayoutError, parse_confirmation

    if not file.exists():
        raise UserError(f"{file}: no such file", "give the path of Finance's confirmation CSV")
    data = file.read_bytes()
    try:
        batch, _ = parse_confirmation(str(file), data)
    except PayoutError as e:
        raise UserError(str(e), "fix the file and send it again (nothing was posted)") from None
    key = f"{CONFIRMATION_PREFIX}/{batch}/{file.name}"
    platform = open_platform()
    platform.objects.put_bytes(key, data)
    result = _lifecycle(lambda conn: post_confirmation(conn, key, data, by or _user()))
    if result["already"]:
        err.print(f"{key} was posted before: nothing changed")
    else:
        err.print(
            f"{key}: {result['paid']} paid, {result['failed']} failed (back on the balance next period), "
            f"{result['pending']} pending"
        )


@audit_app.command("verify")
def audit_verify() -> None:
    """Re-hash the audit chain, then check the sealed archive (MM_AUDIT_ARCHIVE) in itself and against Postgres:
    any altered, removed or reordered record is reported."""
    from mm_pipelines.audit.chain import verify
    from mm_pipelines.audit.export import verify_archive
    from mm_pipelines.stores.objects import open_object_store

    count, problems = _lifecycle(verify)
    for p in problems:
        err.print(f"[red]✗[/red] {p}")
    if not problems:
        console.print(f"[green]✓[/green] {count:,} audit records, chain intact")
    settings = Settings.from_env()
    archive = open_object_store(settings.audit_archive_url)
    archived, archive_problems = _lifecycle(lambda conn: verify_archive(conn, archive))
    for p in archive_problems:
        err.print(f"[red]✗[/red] archive: {p}")
    if problems:
        raise UserError(
            f"the audit log does not verify ({len(problems)} problem(s) in {count:,} records"
            + (f"; {len(archive_problems)} in the archive)" if archive_problems else ")"),
            "restore it from backup and investigate",
        )
    if archive_problems:
        raise UserError(
            f"the audit archive does not verify ({len(archive_problems)} problem(s) in {archived:,} sealed records)",
            f"compare {settings.audit_archive_url} with the metadata DB and investigate",
        )
    console.print(f"[green]✓[/green] {archived:,} sealed audit records in {settings.audit_archive_url} match Postgres")


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal the audit records not yet archived into write-once segments in MM_AUDIT_ARCHIVE (Object Lock on S3)."""
    from mm_pipelines.audit.export import seal_segments
    from mm_pipelines.stores.objects import open_object_store

    settings = Settings.from_env()
    archive = open_object_store(settings.audit_archive_url)
    keys = _lifecycle(lambda conn: seal_segments(conn, archive, retain_days=settings.audit_retention_days))
    for key in keys:
        console.print(key)
    err.print(
        f"{len(keys)} segment(s) sealed in {settings.audit_archive_url}"
        if keys
        else f"nothing to seal: {settings.audit_archive_url} holds every audit record"
    )


@audit_app.command("log")
def audit_log(limit: Annotated[int, typer.Option(help="How many of the latest records.")] = 20) -> None:
    """The latest audit records: who, in which role, did what to which object."""
    from mm_pipelines.audit.chain import records

    rows = _lifecycle(lambda conn: records(conn, limit=limit))
    table = Table(title="Audit log")
    for name in ("#", "at", "actor", "role", "action", "object", "details"):
        table.add_column(name)
    for r in reversed(rows):
        table.add_row(
            str(r.seq), r.at.strftime("%Y-%m-%d %H:%M:%S"), r.actor, r.role, r.action, r.object, str(r.details)
        )
    console.print(table)
