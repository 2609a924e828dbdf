import subprocess
import sys
import textwrap
import time

import pytest

from mm_pipelines.stores.clickhouse import WarehouseLock, WarehouseLockTimeout, warehouse_lock

pytestmark = pytest.mark.unit


def test_lock_is_reentrant_within_a_process(tmp_path):
    lock = warehouse_lock(tmp_path / "wh")
    with lock.held(), lock.held():
        assert lock._depth == 2
    assert lock._depth == 0


def test_another_process_waits_then_times_out_with_a_clear_message(tmp_path):
    wh = tmp_path / "wh"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from mm_pipelines.stores.clickhouse import warehouse_lock
            with warehouse_lock(Path({str(wh)!r})).held():
                print("held", flush=True)
                time.sleep(3)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    messages = []
    with pytest.raises(WarehouseLockTimeout, match=r"still in use by pid \d+"):
        with WarehouseLock(wh, timeout_s=0.5).held(messages.append):
            pass
    assert "Waiting for the embedded warehouse" in messages[0]
    started = time.monotonic()
    with WarehouseLock(wh, timeout_s=30).held(messages.append):
        waited = time.monotonic() - started
    assert holder.wait() == 0 and waited > 0.5
