"""Install files pin packages by name and version: a local wheel or path installs only where it was written."""

import importlib.util
import re
import subprocess
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("constraints_script", ROOT / "scripts" / "constraints.py")
pins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pins)


def test_constraints_pin_every_package_by_name_and_version():
    assert pins.constraint_problems((ROOT / "constraints.txt").read_text()) == []


def test_setup_py_requires_packages_by_name_only():
    requirements = pins.setup_requirements(ROOT / "setup.py")
    assert any(r.startswith("dagster==") for r in requirements)
    assert pins.requirement_problems(requirements) == []


def test_the_wheel_pin_that_broke_fresh_machines_is_refused():
    before = (
        subprocess.run(["git", "show", "c9311a2:constraints.txt"], cwd=ROOT, capture_output=True, text=True).stdout
        or "confluent-kafka @ file:///tmp/dlck/confluent_kafka-2.16.1-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=24f6\n"
    )
    problems = pins.constraint_problems(before)
    assert len(problems) == 1 and "confluent-kafka" in problems[0] and "names a file or URL" in problems[0]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("pkg @ https://example.org/pkg-1.0.tar.gz", "names a file or URL"),
        ("./wheels/pkg-1.0-py3-none-any.whl", "names a file or URL"),
        ("pkg>=1.0", "not an exact pin"),
        ("pkg==1.*", "not an exact pin"),
        ("pkg", "not an exact pin"),
    ],
)
def test_anything_but_an_exact_pin_is_named_with_its_line(line, problem):
    (found,) = pins.constraint_problems(f"ok==1.0\n# a comment\n\n{line}\n", "requirements.txt")
    assert found.startswith("requirements.txt:4:") and problem in found


def test_a_url_in_setup_py_is_refused():
    assert pins.requirement_problems(["ok>=1", "pkg @ file:///tmp/pkg.whl"]) == [
        "setup.py: 'pkg @ file:///tmp/pkg.whl' names a file or URL: require the package by name"
    ]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_test_environment_is_exactly_the_pinned_set():
    """Every installed distribution is pinned at its installed version: nothing resolved outside constraints.txt."""
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip():
            name, version = line.split("==")
            pinned[_normal(name)] = version
    unpinned = []
    # Only the environment's own site-packages: setuptools puts its vendored copies on sys.path once imported.
    site_packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for dist in metadata.distributions(path=site_packages):
        name = _normal(dist.metadata["Name"])
        if name == "mm-pipelines":
            continue
        if pinned.get(name) != dist.version:
            unpinned.append(f"{name}=={dist.version} (constraints.txt: {pinned.get(name, 'missing')})")
    assert unpinned == []
