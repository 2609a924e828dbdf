"""Each Dagster run hands dbt its own partition range: as environment variables (run_env, read by run_var in
model SQL only when dbt runs it) dbt keeps its parsed project whole, and the SQL it runs uses the new values.
As --vars, dbt re-parses the whole project."""

import json
import os
import re
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from mm_pipelines.assets.dbt import run_env
from mm_pipelines.config import dbt_project_dir
from mm_pipelines.resources import mm_dbt_executable

pytestmark = pytest.mark.integration

FULL_PARSE = "Unable to do partial parsing"


def _compile(target: Path, env: dict[str, str], *args: str) -> tuple[str, str, float]:
    """(dbt's debug log of the parse, the compiled SQL of int_conversion_paths, seconds)."""
    project = dbt_project_dir()
    started = time.monotonic()
    done = subprocess.run(
        [
            mm_dbt_executable(),
            "--debug",
            "compile",
            "--select",
            "int_conversion_paths",
            *args,
            "--profiles-dir",
            str(project),
            "--target-path",
            str(target),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = next(target.glob("compiled/**/int_conversion_paths.sql")).read_text()
    return done.stdout, compiled, seconds


NOTHING_TO_REPARSE = "Partial parsing enabled: 0 files deleted, 0 files added, 0 files changed"


def test_a_new_partition_range_reuses_the_whole_parse_and_compiles_with_the_new_range(mm_home, tmp_path):
    target = tmp_path / "target"
    out, sql, _ = _compile(target, run_env())  # as the prepared manifest: no range
    assert FULL_PARSE in out  # nothing saved yet
    assert "2026-11" not in sql

    out, sql, _ = _compile(target, run_env(days=(date(2026, 11, 1), date(2026, 11, 2))))
    assert FULL_PARSE not in out and NOTHING_TO_REPARSE in out, out
    assert "toDate('2026-11-01')" in sql and "toDate('2026-11-02')" in sql

    out, sql, _ = _compile(target, run_env(days=(date(2026, 11, 20), date(2026, 11, 23))))
    assert FULL_PARSE not in out and NOTHING_TO_REPARSE in out, out
    assert "toDate('2026-11-20')" in sql and "toDate('2026-11-23')" in sql and "2026-11-01" not in sql


def test_vars_on_the_command_line_still_work_at_the_cost_of_a_full_parse(mm_home, tmp_path):
    target = tmp_path / "target"
    _compile(target, run_env())
    by_vars = json.dumps({"attribution_start_date": "2026-11-05", "attribution_end_date": "2026-11-06"})
    out, sql, _ = _compile(target, run_env(), "--vars", by_vars)
    assert FULL_PARSE in out  # dbt-core 1.11 hashes the command-line vars into its parse state
    assert "toDate('2026-11-05')" in sql
    # An environment value wins over --vars: a Dagster run is never overridden by a stray flag.
    out, sql, _ = _compile(target, run_env(days=(date(2026, 11, 7), date(2026, 11, 8))), "--vars", by_vars)
    assert "toDate('2026-11-07')" in sql


def _config_calls(sql: str) -> list[str]:
    """The argument text of every config(...) call, parentheses balanced."""
    calls = []
    for match in re.finditer(r"\bconfig\(", sql):
        depth, i = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        calls.append(sql[match.end() : i - 1])
    return calls


def test_per_run_values_are_read_only_through_run_var_in_model_sql():
    """The rules that keep the parse valid: models read the run's values through run_var (environment first),
    never a plain var, and neither a config nor a YAML file reads one."""
    project = dbt_project_dir()
    declared = set(yaml.safe_load((project / "dbt_project.yml").read_text())["vars"])
    assert {"attribution_start_date", "attribution_end_date", "royalty_period"} <= declared
    assert {name.removeprefix("DBT_VAR_").lower() for name in run_env()} <= declared
    for path in [*project.glob("models/**/*.yml"), *project.glob("seeds/**/*.yml"), *project.glob("tests/**/*.yml")]:
        assert "var(" not in path.read_text(), f"{path} reads a var"
    for path in [*project.glob("models/**/*.sql"), *project.glob("macros/**/*.sql")]:
        sql = path.read_text()
        if path.name != "run_var.sql":
            assert not re.search(r"(?<![_a-z])var\(", sql), f"{path} reads a var without run_var"
        for call in _config_calls(sql):
            assert "var(" not in call, f"{path}: a config reads a per-run value: {call.strip()}"
