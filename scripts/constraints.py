"""The install files' pins: check them, resolve them afresh, and prove they install on an empty machine.

    python scripts/constraints.py check        every dependency pinned by name and version, nothing local
    python scripts/constraints.py regenerate   resolve setup.py in a throwaway virtualenv, rewrite constraints.txt
    python scripts/constraints.py resolve      `pip install --dry-run` of the pinned set with an empty pip cache

A pin such as `pkg @ file:///tmp/…whl` installs only on the machine where it was written (pip freeze
writes one for a package installed from a local wheel), so pins are written from `pip list
--format=freeze`, which always gives `name==version`.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
PYTHON = "python3.11"
# name==version, nothing else: no URL, no path, no range, no wildcard.
EXACT_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+")
LOCAL = re.compile(r"(@|file:|://|^[./~]|\.whl\b|\.tar\.gz\b|\.zip\b)")


def constraint_problems(text: str, name: str = "constraints.txt") -> list[str]:
    """Each line that is not an exact `name==version` pin, as `file:line: what is wrong`."""
    problems = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if LOCAL.search(line):
            problems.append(f"{name}:{n}: {line!r} names a file or URL: pin it as name==version")
        elif not EXACT_PIN.fullmatch(line):
            problems.append(f"{name}:{n}: {line!r} is not an exact pin: write name==version")
    return problems


def setup_requirements(setup_py: Path) -> list[str]:
    """install_requires and every extra of a setup.py, read by running it with setup() captured."""
    captured: dict = {}
    with mock.patch("setuptools.setup", lambda **kw: captured.update(kw)):
        runpy.run_path(str(setup_py), run_name="__main__")
    extras = [r for reqs in captured.get("extras_require", {}).values() for r in reqs]
    return list(captured.get("install_requires", [])) + extras


def requirement_problems(requirements: list[str], name: str = "setup.py") -> list[str]:
    """Requirements that name a file, a path or a URL instead of a package."""
    return [f"{name}: {r!r} names a file or URL: require the package by name" for r in requirements if LOCAL.search(r)]


def check() -> int:
    problems = constraint_problems(CONSTRAINTS.read_text())
    problems += requirement_problems(setup_requirements(ROOT / "setup.py"))
    for path in sorted(ROOT.glob("requirements*.txt")):
        problems += constraint_problems(path.read_text(), path.name)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, cwd=ROOT).stdout


def regenerate() -> int:
    """Resolve the newest versions setup.py allows, as a new machine would, and pin exactly those."""
    with tempfile.TemporaryDirectory(prefix="mm-constraints-") as tmp:
        venv = Path(tmp) / "venv"
        _run(PYTHON, "-m", "venv", str(venv))
        pip = str(venv / "bin" / "pip")
        _run(pip, "install", "-q", "--upgrade", "pip", "setuptools", "wheel")
        _run(pip, "install", "-q", "-e", ".[dev]")
        frozen = _run(pip, "list", "--format=freeze", "--exclude-editable")
    pins = sorted((line for line in frozen.splitlines() if line.strip()), key=str.lower)
    text = "\n".join(pins) + "\n"
    problems = constraint_problems(text)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    CONSTRAINTS.write_text(text)
    print(f"Wrote {len(pins)} pins to {CONSTRAINTS.name}")
    return 0


def resolve() -> int:
    """Resolve the pinned set in a throwaway virtualenv with no pip cache: what a new machine sees."""
    with tempfile.TemporaryDirectory(prefix="mm-resolve-") as tmp:
        venv = Path(tmp) / "venv"
        _run(PYTHON, "-m", "venv", str(venv))
        pip = [str(venv / "bin" / "pip"), "--no-cache-dir", "--disable-pip-version-check"]
        _run(*pip, "install", "-q", "-c", str(CONSTRAINTS), "--upgrade", "pip", "setuptools", "wheel")
        out = _run(*pip, "install", "--dry-run", "--quiet", "--report", "-", "-c", str(CONSTRAINTS), "-e", ".[dev]")
    count = out.count('"download_info"')
    print(f"constraints.txt resolves from the package index with an empty cache: {count} packages")
    return 0


if __name__ == "__main__":
    commands = {"check": check, "regenerate": regenerate, "resolve": resolve}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(commands)}}}")
    sys.exit(commands[sys.argv[1]]())
