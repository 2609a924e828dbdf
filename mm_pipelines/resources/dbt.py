"""The dbt resource: dagster-dbt's DbtCliResource, as dagster-dbt documents it, running `mm-dbt`."""

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource


def mm_dbt_executable() -> str:
    """`mm-dbt` beside this interpreter: dbt with the embedded-warehouse hook (mm_pipelines.dbt_cli)."""
    candidate = Path(sys.executable).parent / "mm-dbt"
    return str(candidate) if candidate.exists() else (shutil.which("mm-dbt") or "mm-dbt")


def dbt_resource(project_dir: str) -> DbtCliResource:
    """A plain DbtCliResource on the project, with `mm-dbt` as its documented `dbt_executable`."""
    return DbtCliResource(project_dir=project_dir, profiles_dir=project_dir, dbt_executable=mm_dbt_executable())
