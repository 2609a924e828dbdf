"""`mm-dbt` keeps dbt's parsed project across runs that differ only in their declared vars (each Dagster run
passes its own partition range), and the SQL it runs still uses the new values."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mm_pipelines.config import dbt_project_dir
from mm_pipelines.resources import mm_dbt_executable

pytestmark = pytest.mark.integration

FULL_PARSE = "Unable to do partial parsing"


def _compile(target: Path, dbt_vars: dict) -> tuple[str, str]:
    """(dbt's output, the compiled SQL of int_conversion_paths)."""
    project = dbt_project_dir()
    done = subprocess.run(
        [mm_dbt_executable(), "compile", "--select", "int_conversion_paths", "--vars", json.dumps(dbt_vars),
         "--profiles-dir", str(project), "--target-path", str(target)],
        cwd=project, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = next(target.glob("compiled/**/int_conversion_paths.sql")).read_text()
    return done.stdout, compiled


def test_a_new_partition_range_reuses_the_parse_and_compiles_with_the_new_range(mm_home, tmp_path):
    target = tmp_path / "target"
    out, sql = _compile(target, {"attribution_start_date": "2026-11-01", "attribution_end_date": "2026-11-02"})
    assert FULL_PARSE in out  # nothing saved yet
    assert "toDate('2026-11-01')" in sql

    out, sql = _compile(target, {"attribution_start_date": "2026-11-20", "attribution_end_date": "2026-11-23",
                                 "attribution_half_life_days": 3})
    assert FULL_PARSE not in out, out
    assert "toDate('2026-11-20')" in sql and "toDate('2026-11-23')" in sql and "2026-11-01" not in sql

    # A var the project does not declare may be read anywhere: dbt re-parses, as it always did.
    out, _ = _compile(target, {"attribution_start_date": "2026-11-20", "attribution_end_date": "2026-11-23",
                               "undeclared_flag": True})
    assert FULL_PARSE in out


def _config_calls(sql: str) -> list[str]:
    """The argument text of every config(...) call, parentheses balanced."""
    calls = []
    for match in re.finditer(r"\bconfig\(", sql):
        depth, i = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        calls.append(sql[match.end():i - 1])
    return calls


def test_declared_vars_are_read_only_in_model_sql():
    """The rule that makes reusing the parse safe: no declared var decides a config, and no YAML reads one."""
    project = dbt_project_dir()
    declared = set(yaml.safe_load((project / "dbt_project.yml").read_text())["vars"])
    assert {"attribution_start_date", "attribution_end_date", "royalty_period"} <= declared
    for path in [*project.glob("models/**/*.yml"), *project.glob("seeds/**/*.yml"), *project.glob("tests/**/*.yml")]:
        assert "var(" not in path.read_text(), f"{path} reads a var"
    for path in [*project.glob("models/**/*.sql"), *project.glob("macros/**/*.sql")]:
        for call in _config_calls(path.read_text()):
            assert "var(" not in call, f"{path}: a config reads a var: {call.strip()}"
