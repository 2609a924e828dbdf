import os
import subprocess
import sys
from pathlib import Path

import pytest

MM = str(Path(sys.executable).parent / "mm")


@pytest.fixture
def mm(mm_home):
    """Run the `mm` command line as a user would, on a fresh embedded platform."""

    def run(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [MM, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "160"}
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"mm {' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    return run
