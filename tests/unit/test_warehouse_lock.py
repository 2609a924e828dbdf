import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mm_pipelines.config import ConfigError
from mm_pipelines.stores.clickhouse import WarehouseLock, WarehouseLockTimeout, warehouse_lock

pytestmark = pytest.mark.unit


def test_lock_is_reentrant_within_a_thread(tmp_path):
    lock = warehouse_lock(tmp_path / "wh")
    with lock.held(), lock.held():
        assert lock.depth == 2
    assert lock.depth == 0


def test_another_thread_waits_for_the_holder(tmp_path):
    lock = warehouse_lock(tmp_path / "wh")
    messages, outcome = [], []

    def wait():
        try:
            with lock.held(messages.append, timeout_s=0.2):
                outcome.append("held")
        except WarehouseLockTimeout:
            outcome.append("timed out")

    with lock.held():
        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join()
    assert outcome == ["timed out"] and "Waiting for the embedded warehouse" in messages[0]
    waiter = threading.Thread(target=wait)
    waiter.start()
    waiter.join()
    assert outcome == ["timed out", "held"]


def test_a_forked_child_gets_its_own_lock(tmp_path):
    import multiprocessing

    lock = warehouse_lock(tmp_path / "wh")
    with lock.held():
        pass
    child = multiprocessing.get_context("fork").Process(
        target=lambda: warehouse_lock(tmp_path / "wh").held().__enter__()
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0


def holding(wh, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from pathlib import Path
            from mm_pipelines.stores.clickhouse import warehouse_lock
            with warehouse_lock(Path({str(wh)!r})).held():
                print("held", flush=True)
                time.sleep({seconds})
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_another_process_waits_then_times_out_with_a_clear_message(tmp_path):
    wh = tmp_path / "wh"
    holder = holding(wh, 3)
    messages = []
    with pytest.raises(WarehouseLockTimeout, match=r"still in use by pid \d+"):
        with WarehouseLock(wh, timeout_s=0.5).held(messages.append):
            pass
    assert "Waiting for the embedded warehouse" in messages[0]
    started = time.monotonic()
    with WarehouseLock(wh, timeout_s=30).held(messages.append):
        waited = time.monotonic() - started
    assert holder.wait() == 0 and waited > 0.5


def test_the_wait_is_limited_by_the_setting(tmp_path, monkeypatch):
    wh = tmp_path / "wh"
    holder = holding(wh, 3)
    monkeypatch.setenv("MM_WAREHOUSE_LOCK_TIMEOUT", "0.3")
    started = time.monotonic()
    with pytest.raises(
        WarehouseLockTimeout, match="after 0.3s: wait for it to finish, or raise MM_WAREHOUSE_LOCK_TIMEOUT"
    ):
        with WarehouseLock(wh).held(lambda _: None):
            pass
    assert time.monotonic() - started < 2
    monkeypatch.setenv("MM_WAREHOUSE_LOCK_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="^MM_WAREHOUSE_LOCK_TIMEOUT='soon' is not a number of seconds"):
        with WarehouseLock(wh).held(lambda _: None):
            pass
    holder.wait()
