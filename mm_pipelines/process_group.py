"""Long-running child servers (`dagster dev`, `dbt docs serve`) that stop with the `mm` command that started them.

A plain subprocess outlives its parent: SIGTERM to `mm dev` used to leave the Dagster webserver and
daemon running (and the daemon kept launching runs). The child gets a process group of its own, and
SIGTERM, SIGINT (Ctrl-C) or SIGHUP to `mm` stops that group and every process it spawned, escalating to
SIGKILL for any that do not exit in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 20.0


class _Stopped(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def _raise_stopped(signum, _frame):
    raise _Stopped(signum)


def stop_tree(proc: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM the child's group and all its descendants (some start sessions of their own); SIGKILL what is left."""
    try:
        tree = [psutil.Process(proc.pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for p in tree:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    proc.poll()


def run_in_process_group(cmd: Sequence[str], cwd: Path | None = None) -> int:
    """Run `cmd` until it exits or `mm` is told to stop; returns its exit code (128 + signal when stopped)."""
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS}
    proc = None
    try:
        proc = subprocess.Popen(list(cmd), cwd=cwd, start_new_session=True)
        return proc.wait()
    except _Stopped as stopped:
        return 128 + stopped.signum
    finally:
        # Stopping is bounded (GRACE_S, then SIGKILL): a second Ctrl-C must not cut it short.
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        if proc is not None:
            stop_tree(proc)  # also what an exited child left behind in its group
        for s, handler in previous.items():
            signal.signal(s, handler)
