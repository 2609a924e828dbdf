"""The package's import layers (.importlinter) hold, and every module imports on its own: no cycle that only works
because something else happened to be imported first."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mm_pipelines

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(mm_pipelines.__file__).parent


def test_the_import_layers_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", str(REPO / ".importlinter")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[result.stdout.find("Broken contracts") :] + result.stderr


def package_modules() -> list[str]:
    return sorted(
        ".".join(("mm_pipelines", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts[:-1] or path.name == "__init__.py"
    )


# Each module is imported with no module of the package loaded (third-party ones stay, which keeps this fast).
IMPORT_EACH = textwrap.dedent("""
    import importlib, sys, traceback
    failed = []
    for name in sys.argv[1:]:
        for loaded in [m for m in sys.modules if m == "mm_pipelines" or m.startswith("mm_pipelines.")]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(f"{name}: " + traceback.format_exc().strip().splitlines()[-1])
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
""")


def test_every_module_imports_on_its_own():
    modules = package_modules()
    assert "mm_pipelines.recovery" in modules and "mm_pipelines.stores.warehouse_tables" in modules
    result = subprocess.run([sys.executable, "-c", IMPORT_EACH, *modules], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"modules that fail to import on their own:\n{result.stdout}{result.stderr[-2000:]}"
