"""Royalties at scale on the embedded platform: 100k payees and 1M sales lines in one period.

    .venv/bin/python benchmarks/royalties.py [--payees 100000] [--sales 1000000] [--home DIR]

Setup (reported, not part of the goal): a fresh platform home, the reference seed and empty marts, a catalog of
payees/2 creators, each with one contract for one SKU and two payees (70/30), with unit tiers on half of them,
reserves on a fifth, advances on a tenth and guarantees on a twentieth (bank details into the embedded PII vault),
then the same catalog again (no vault writes); 1M sales lines inserted as Arrow.

Timed (goal: under 60 s together): the royalties_job for the period through Dagster in this process — contract
snapshot, ledger (dbt on chDB), statements (the Decimal engine), draft payout batches — then approval and the
signed export of every batch (CSV, pain.001 validated against its XSD, manifest, Ed25519 signature), and
`verify`. Peak RSS: this process (chDB and the engine run in it) and its largest child (dbt).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

console = Console()
PERIOD = "2026-10"
GOAL_S = 60.0
IBANS = {"EUR": "DE89370400440532013000", "USD": "FR1420041010050500013M02606", "GBP": "GB29NWBK60161331926819"}


def build_catalog(payees: int):
    from mm_pipelines.royalties.contracts import Advance, Catalog, Contract, Creator, Payee, Rule, Split, Tier

    rng = random.Random(5)
    catalog = Catalog()
    for i in range(payees // 2):
        creator = f"cr-{i}"
        catalog.creators.append(Creator(creator, f"Creator {i}"))
        ids = (f"pe-{i}-a", f"pe-{i}-b")
        for pid in ids:
            currency = rng.choices(["EUR", "USD", "GBP"], [80, 15, 5])[0]
            kyc = "verified" if rng.random() < 0.95 else "pending"
            catalog.payees.append(
                Payee(
                    pid,
                    creator,
                    f"Payee {pid}",
                    kyc,
                    f"kyc://case/{pid}",
                    "sepa",
                    currency,
                    IBANS[currency],
                    "",
                    Decimal(rng.choice([0, 10, 25])),
                    Decimal(rng.choice([0, 0, 0, "0.15"])),
                )
            )
        splits = (Split(ids[0], Decimal("0.7")), Split(ids[1], Decimal("0.3")))
        tiers = (
            (Tier(Decimal(0), Decimal("0.1")), Tier(Decimal(20), Decimal("0.125")))
            if i % 2
            else (Tier(Decimal(0), Decimal("0.1")),)
        )
        rule = Rule(
            "r1",
            "sku",
            f"SKU-{i}",
            "net_sales",
            "",
            "units" if i % 2 else "flat",
            tiers,
            Decimal("0.05") if i % 3 == 0 else Decimal(0),
            splits,
        )
        catalog.contracts.append(
            Contract(
                f"CT-{i}",
                creator,
                rng.choice(["USD", "EUR"]),
                date(2026, 1, 1),
                date(2027, 12, 31),
                ("WW",),
                i % 7 == 0,
                ((ids[0], Decimal(50)),) if i % 20 == 0 else (),
                (Advance(ids[0], Decimal(200), date(2026, 10, 2)),) if i % 10 == 0 else (),
                Decimal("0.1") if i % 5 == 0 else Decimal(0),
                2,
                2,
                (rule,),
            )
        )
    return catalog


def sales_table(lines: int, skus: int) -> pa.Table:
    rng = random.Random(11)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    units = [rng.choice((1, 1, 1, 2, 3)) * (-1 if rng.random() < 0.03 else 1) for _ in range(lines)]
    return pa.table(
        {
            "sale_id": pa.array([f"s-{i}" for i in range(lines)]),
            "revision": pa.array([0] * lines, pa.uint32()),
            "sold_at": pa.array(
                [start + timedelta(seconds=rng.randrange(30 * 86400)) for _ in range(lines)], pa.timestamp("ms", "UTC")
            ),
            "sku": pa.array([f"SKU-{rng.randrange(skus)}" for _ in range(lines)]),
            "territory": pa.array([rng.choice(("US", "GB", "DE", "FR")) for _ in range(lines)]),
            "units": pa.array(units, pa.int64()),
            "net_amount": pa.array([Decimal(rng.randrange(199, 2999)) / 100 * u for u in units], pa.decimal128(38, 10)),
            "currency": pa.array([rng.choice(("USD", "EUR", "GBP")) for _ in range(lines)]),
            "load_id": pa.array(["bench"] * lines),
            "file": pa.array(["bench"] * lines),
            "line": pa.array(range(2, lines + 2), pa.uint64()),
            "loaded_at": pa.array([start] * lines, pa.timestamp("ms", "UTC")),
        }
    )


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payees", type=int, default=100_000)
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="mm-bench-royalties-"))
    os.environ["MM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    from mm_pipelines.royalties.payouts import generate_key_pair

    private, public = generate_key_pair()
    os.environ["MM_PAYOUT_SIGNING_KEY"] = private
    os.environ.setdefault("MM_PAYOUT_DEBTOR_IBAN", "DE02120300000000202051")  # the paying account of the pain.001 files

    from dagster import DagsterInstance

    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.platform import Platform
    from mm_pipelines.royalties import bank_details, batches
    from mm_pipelines.royalties.store import save_catalog
    from mm_pipelines.stores.warehouse_tables import ensure_tables

    setup: list[tuple[str, float]] = []
    timed: list[tuple[str, float]] = []
    platform = Platform.from_env()
    t = time.perf_counter()
    with platform.warehouse.session() as s:
        ensure_tables(s)
    subprocess.run(
        [str(Path(sys.executable).parent / "mm-dbt"), "build", "--exclude", "tag:royalty", "--quiet"],
        cwd=dbt_project_dir(),
        check=True,
    )
    setup.append(("reference seed, empty marts (dbt)", time.perf_counter() - t))
    t = time.perf_counter()
    catalog = build_catalog(args.payees)
    vault, digest_key = bank_details.vault(platform.settings), bank_details.digest_key(platform.settings)
    with platform.metadata.connect() as conn:
        save_catalog(conn, catalog, "benchmark", "bench", vault=vault, digest_key=digest_key)
    setup.append(
        (
            f"catalog: {len(catalog.payees):,} payees, {len(catalog.contracts):,} contracts into Postgres "
            "(bank details into the PII vault)",
            time.perf_counter() - t,
        )
    )
    t = time.perf_counter()
    with platform.metadata.connect() as conn:
        again = save_catalog(conn, catalog, "benchmark", "bench", vault=vault, digest_key=digest_key)
    setup.append((f"the same catalog again ({again['new bank details']:,} new bank details)", time.perf_counter() - t))
    t = time.perf_counter()
    table = sales_table(args.sales, len(catalog.contracts))
    with platform.warehouse.session() as s:
        s.insert_arrow("raw.sales", table)
    setup.append((f"{args.sales:,} sales lines into raw.sales", time.perf_counter() - t))

    defs = build_definitions()
    with DagsterInstance.get() as instance:
        t = time.perf_counter()
        result = defs.resolve_job_def("royalties_job").execute_in_process(
            instance=instance, partition_key=f"{PERIOD}-01", raise_on_error=False
        )
        total_job = time.perf_counter() - t
        if not result.success:
            raise SystemExit([e.event_specific_data.error.message for e in result.all_events if e.is_step_failure])
    timed.append(("royalties_job (snapshot, ledger, statements, draft batches)", total_job))
    for name, seconds in step_durations(result.run_id):
        timed.append((f"  {name}", seconds))

    settings = batches.PayoutSettings.from_env()
    t = time.perf_counter()
    with platform.metadata.connect() as conn:
        ids = [
            b
            for (b,) in conn.execute(
                "SELECT batch_id FROM payout_batches WHERE period = %s ORDER BY batch_id", (PERIOD,)
            )
        ]
        for bid in ids:
            for approver in ("fin-1", "fin-2"):
                if batches.batch_row(conn, bid)["status"] == "draft":
                    batches.approve(conn, bid, approver, settings)
            batches.export(conn, platform.objects, bid, "fin-1", settings, vault=vault)
    timed.append(
        (f"approve + signed export of {len(ids)} batches (CSV, pain.001 + XSD, manifest)", time.perf_counter() - t)
    )
    t = time.perf_counter()
    problems = [p for bid in ids for p in batches.verify(platform.objects, bid, public)]
    timed.append(("verify every export", time.perf_counter() - t))
    if problems:
        raise SystemExit(problems)

    with platform.metadata.connect() as conn:
        lines, paid = conn.execute("SELECT count(*), sum(amount) FROM payout_lines").fetchone()
        held = conn.execute("SELECT count(*) FROM payout_holds").fetchone()[0]
        statements = conn.execute(
            "SELECT count(*) FROM royalty_statement_totals WHERE period = %s", (PERIOD,)
        ).fetchone()[0]
    ledger_lines = platform.warehouse.query_rows("SELECT count() FROM marts.royalty_ledger")[0][0]

    st = Table(title="Setup (not timed against the goal)")
    st.add_column("step")
    st.add_column("seconds", justify="right")
    for name, seconds in setup:
        st.add_row(name, f"{seconds:.1f}")
    console.print(st)
    tt = Table(title=f"Royalties for {PERIOD}: {args.payees:,} payees, {args.sales:,} sales lines")
    tt.add_column("stage")
    tt.add_column("seconds", justify="right")
    for name, seconds in timed:
        tt.add_row(name, f"{seconds:.1f}")
    measured = total_job + sum(s for n, s in timed[-2:])
    tt.add_section()
    tt.add_row(
        f"total (goal < {GOAL_S:.0f} s)", f"{measured:.1f}", style="bold green" if measured < GOAL_S else "bold red"
    )
    console.print(tt)
    console.print(
        f"ledger lines {ledger_lines:,}; statements {statements:,}; "
        f"payout lines {lines:,} ({len(ids)} batches, total {paid:,.2f}); held {held:,}"
    )
    console.print(
        f"peak RSS: this process {peak_mb(resource.RUSAGE_SELF):,.0f} MB, "
        f"largest child (dbt) {peak_mb(resource.RUSAGE_CHILDREN):,.0f} MB"
    )


def step_durations(run_id: str) -> list[tuple[str, float]]:
    """Per-step wall time of the run, from its event log."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.get() as instance:
        records = instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS})
    starts: dict[str, float] = {}
    out = []
    for r in records:
        if r.dagster_event.event_type == DagsterEventType.STEP_START:
            starts[r.step_key] = r.timestamp
        elif r.step_key in starts:
            out.append((r.step_key, r.timestamp - starts[r.step_key]))
    return out


if __name__ == "__main__":
    main()
