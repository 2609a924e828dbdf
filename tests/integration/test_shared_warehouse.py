"""Two processes on one embedded chDB warehouse: both succeed, one waiting for the other."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

WRITER = textwrap.dedent("""
    import sys, time
    from mm_pipelines.stores.clickhouse import Warehouse
    w = Warehouse(sys.argv[1])
    for i in range(5):
        with w.session() as s:
            s.command("CREATE TABLE IF NOT EXISTS default.hits (who String, n UInt32) ENGINE = MergeTree ORDER BY who")
            s.command(f"INSERT INTO default.hits VALUES ('{sys.argv[2]}', {i})")
            time.sleep(0.2)  # hold the warehouse a while, so the other process must wait
    print("done")
""")


def test_two_processes_share_one_warehouse(tmp_path):
    url = f"chdb://{tmp_path / 'wh'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    from mm_pipelines.stores.clickhouse import Warehouse

    assert Warehouse(url).query_rows("SELECT who, count() FROM default.hits GROUP BY who ORDER BY who") == [
        ("a", 5),
        ("b", 5),
    ]


def test_dbt_waits_for_a_process_holding_the_warehouse(tmp_path):
    """`mm-dbt` and another process: the second waits with a clear message instead of failing."""
    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.resources import mm_dbt_executable

    wh = tmp_path / "wh"
    # The holder keeps the warehouse until told to let go (its stdin closes), however slow dbt starts.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom mm_pipelines.stores.clickhouse import Warehouse\n"
            f"with Warehouse('chdb://{wh}').session() as s:\n    print('held', flush=True)\n    sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    project = dbt_project_dir()
    dbt = subprocess.Popen(
        [
            mm_dbt_executable(),
            "seed",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(tmp_path / "target"),
        ],
        env={**os.environ, "MM_CLICKHOUSE_URL": f"chdb://{wh}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    waiting = ""
    for line in dbt.stderr:  # blocks until dbt reports that it is waiting (or exits)
        if "Waiting for the embedded warehouse" in line:
            waiting = line
            break
    assert "in use by pid" in waiting
    assert dbt.poll() is None  # still waiting, not failed
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
    out, rest = dbt.communicate(timeout=300)
    assert dbt.returncode == 0, out[-2000:] + rest[-2000:]
