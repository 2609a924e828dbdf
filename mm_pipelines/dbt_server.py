"""A fork server for `mm-dbt`: dbt is imported once, and each command runs in a fork of that process.

Importing dbt and its ClickHouse adapter costs about 2.3 s of CPU, paid by every `mm-dbt` start: three
times in each run that ingests, stages and credits (benchmarks/latency_attribution.py). A run's dbt
resource starts this server beside the run worker; `mm-dbt` then hands it its argv, environment, working
directory and standard streams (as file descriptors over a Unix socket) and exits with the child's exit
code. The child is the same `mm-dbt` as before (same warehouse lock, same output), minus the import.
Without a server, or if it cannot be reached, `mm-dbt` runs dbt itself.

The server imports nothing that starts threads (chDB does; the child imports it), so forking it is safe.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

SERVER_ENV = "MM_DBT_SERVER"
_HEADER = struct.Struct("!I")


def _preload() -> None:
    import clickhouse_connect  # noqa: F401
    import dbt.adapters.clickhouse.impl  # noqa: F401
    import dbt.cli.main  # noqa: F401
    import dbt.parser.manifest  # noqa: F401
    import dbt.task.build  # noqa: F401


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """Become the `mm-dbt` process the client would have been; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        conn.sendall(f"pid {os.getpid()}\n".encode())
        from mm_pipelines.dbt_cli import run_dbt

        try:
            run_dbt()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        atexit._run_exitfuncs()  # as a normal exit would: dbt's multiprocessing semaphores are released
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            conn.sendall(f"exit {code}\n".encode())
        finally:
            os._exit(code)


def serve(path: str, owner: int) -> None:
    """Serve until the process `owner` (the run worker) is gone, however it ended."""
    _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path + ".tmp")
        server.listen()
        server.settimeout(1.0)
        os.rename(path + ".tmp", path)  # clients see the socket only once it accepts
        try:
            while os.getppid() == owner:
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                conn.settimeout(None)
                with conn:
                    try:
                        header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
                        request = json.loads(_recv_exactly(conn, _HEADER.unpack(header)[0]))
                    except (ConnectionError, struct.error, json.JSONDecodeError):
                        continue
                    if os.fork() == 0:
                        server.close()
                        _child(conn, request, fds)  # never returns, so never reaches the finally below
                    for fd in fds:
                        os.close(fd)
        finally:
            os.unlink(path)


def run_on_server(argv: list[str]) -> int | None:
    """Run this `mm-dbt` command on the server named by MM_DBT_SERVER: its exit code, or None when there is
    no server to run it (the caller then runs dbt itself)."""
    path = os.environ.get(SERVER_ENV)
    if not path:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    payload = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    sys.stdout.flush()
    try:
        socket.send_fds(conn, [_HEADER.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
    except OSError:
        conn.close()
        return None  # the server did not take the command: nothing ran
    child = None

    def forward(signum, _frame):
        if child:
            os.kill(child, signum)

    # Dagster cancels a dbt step with SIGINT to this process: the child must get it.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    with conn, conn.makefile("r") as replies:
        try:
            for line in replies:
                word, value = line.split()
                if word == "pid":
                    child = int(value)
                elif word == "exit":
                    return int(value)
        except OSError:
            pass
    print("mm-dbt: the dbt fork server lost the command (child killed?)", file=sys.stderr)
    return 1


class DbtServer:
    """The fork server of one run worker: started when the run's dbt resource is set up, stopped after."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="mm-dbt-")
        self.path = str(Path(self._dir) / "dbt.sock")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mm_pipelines.dbt_server", self.path, str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        self._process.terminate()  # SIGTERM ends it before its own cleanup: the socket is removed below
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        for path in (self.path, self.path + ".tmp"):
            Path(path).unlink(missing_ok=True)
        os.rmdir(self._dir)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
