"""dbt's artifacts and logs go under MM_HOME: the dbt project folder (the installed package, shared by every
user of it) is only read, whether dbt runs at definitions load, in a Dagster step or on its own."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, define_asset_job

from mm_pipelines.config import Settings, dbt_project_dir
from mm_pipelines.resources import mm_dbt_executable

pytestmark = pytest.mark.integration


@pytest.fixture
def installed_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A read-only copy of the dbt project, as a package installed by another user: any write fails."""
    project = tmp_path / "site-packages" / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    for path in [project, *project.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setenv("MM_DBT_PROJECT_DIR", str(project))
    yield project
    for path in [project, *project.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_definitions_and_a_dbt_step_write_only_under_mm_home(mm_home, installed_project):
    from mm_pipelines.definitions import build_definitions

    shutil.rmtree(Settings.from_env().dbt_target_path)  # a home never used: not even the session's parse
    before = _files(installed_project)
    defs = build_definitions()  # a fresh MM_HOME: the manifest is parsed there
    settings = Settings.from_env()
    assert (settings.dbt_target_path / "manifest.json").is_file()
    assert (settings.dbt_target_path / "partial_parse.msgpack").is_file()
    assert (settings.dbt_target_path / "dbt.log").is_file()  # dagster-dbt logs beside the artifacts

    seed = AssetSelection.assets(AssetKey(["reference", "fx_rates"]))
    job = define_asset_job("seed", selection=seed).resolve(asset_graph=defs.resolve_asset_graph())
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]

    assert _files(installed_project) == before
    [invocation] = [p for p in settings.dbt_target_path.iterdir() if p.name.startswith("mm_dbt_models-")]
    assert (invocation / "run_results.json").is_file() and (invocation / "dbt.log").is_file()
    # The step started from the definitions' saved parse: dagster-dbt copied it from DBT_TARGET_PATH.
    assert "Unable to do partial parsing" not in (invocation / "dbt.log").read_text()
    assert "DBT_TARGET_PATH" not in os.environ  # set for the dbt command only


def test_mm_dbt_on_its_own_writes_under_mm_home(mm_home, installed_project):
    shutil.rmtree(Settings.from_env().dbt_target_path)
    done = subprocess.run(
        [
            mm_dbt_executable(),
            "parse",
            "--project-dir",
            str(installed_project),
            "--profiles-dir",
            str(installed_project),
        ],
        cwd=installed_project,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    settings = Settings.from_env()
    assert (settings.dbt_target_path / "manifest.json").is_file()
    assert (settings.dbt_log_path / "dbt.log").is_file()
    assert not (installed_project / "target").exists() and not (installed_project / "logs").exists()


def test_importing_the_definitions_reads_no_configuration(tmp_path):
    """Dagster builds the code location when it loads it: importing the module parses nothing and reads no
    setting, so a process can import it before its environment is complete."""
    env = {**os.environ, "MM_HOME": str(tmp_path / "home"), "MM_DBT_PROJECT_DIR": str(tmp_path / "no-such-project")}
    done = subprocess.run(
        [sys.executable, "-c", "import mm_pipelines.definitions"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "home").exists()
