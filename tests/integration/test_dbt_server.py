"""The dbt fork server: `mm-dbt` commands run in it exactly as they run alone, and it never outlives its run."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_pipelines.dbt_server import SERVER_ENV, DbtServer
from mm_pipelines.resources import mm_dbt_executable

pytestmark = pytest.mark.integration


def _wait_for(predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _last_line(output: str) -> str:
    """The last line dbt printed, without its timestamp."""
    lines = output.strip().splitlines()
    return re.sub(r"^(\x1b\[0m)?\d\d:\d\d:\d\d\s+", "", lines[-1]) if lines else ""


def _mm_dbt(*args: str, server: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != SERVER_ENV} | ({SERVER_ENV: server} if server else {})
    return subprocess.run([mm_dbt_executable(), *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_command_through_the_server_exits_and_prints_as_it_does_alone(mm_home):
    server = DbtServer()
    try:
        _wait_for(lambda: os.path.exists(server.path))
        for args in (["--version"], ["build", "--vars", "{bad"]):
            alone, served = _mm_dbt(*args), _mm_dbt(*args, server=server.path)
            assert served.returncode == alone.returncode
            assert _last_line(served.stdout) == _last_line(alone.stdout)
            assert _last_line(served.stderr) == _last_line(alone.stderr)
        assert _mm_dbt("build", "--vars", "{bad", server=server.path).returncode == 2
        assert "Invalid value for '--vars'" in _mm_dbt("build", "--vars", "{bad", server=server.path).stderr
        assert Path(server.path).exists()  # still serving after its commands (a child must not remove it)
    finally:
        server.stop()
    assert not Path(server.path).exists()


def test_the_client_uses_the_socket_and_says_when_the_command_is_lost(tmp_path):
    """A server that accepts and hangs up: the command fails with the reason instead of hanging or passing."""
    path = str(tmp_path / "dbt.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as fake:
        fake.bind(path)
        fake.listen()
        client = subprocess.Popen([mm_dbt_executable(), "--version"], env={**os.environ, SERVER_ENV: path},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        conn, _ = fake.accept()
        conn.settimeout(2)
        try:
            while conn.recv(65536):  # the whole request, then silence while the client waits
                pass
        except TimeoutError:
            pass
        conn.close()
        _, err = client.communicate(timeout=60)
    assert client.returncode == 1
    assert "lost the command" in err
    # No server at that path any more: mm-dbt runs dbt itself.
    assert _mm_dbt("--version", server=path).returncode == 0


def test_the_server_ends_when_its_run_worker_is_killed(tmp_path):
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; from mm_pipelines.dbt_server import DbtServer; "
                               "s = DbtServer(); print(s.pid, s.path, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )
    server_pid, path = worker.stdout.readline().split()
    server_pid = int(server_pid)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    def gone() -> bool:
        try:
            with open(f"/proc/{server_pid}/stat") as f:
                return f.read().split()[2] == "Z"  # exited, not yet reaped by init
        except FileNotFoundError:
            return True

    _wait_for(gone, seconds=30)
    # ...and takes its socket with it, so no later `mm-dbt` tries it.
    _wait_for(lambda: not Path(path).exists(), seconds=5)
