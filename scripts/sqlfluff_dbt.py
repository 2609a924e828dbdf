"""sqlfluff over the dbt project with the dbt templater, on a throwaway embedded warehouse.

The dbt templater opens a dbt connection to render models; the embedded profile has no server to reach, so
this installs the same chDB connection hook `mm-dbt` uses before handing over to sqlfluff's own CLI.

    python scripts/sqlfluff_dbt.py lint|fix [paths…]     (default: dbt_project/models)
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The dbt templater renders models and skips macro files, so only the models are linted.
DEFAULT_PATHS = ["dbt_project/models"]


def main() -> None:
    command, *paths = sys.argv[1:] or ["lint"]
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="mm-sqlfluff-") as home:
        os.environ.update({"MM_HOME": home, "DBT_TARGET_PATH": f"{home}/target", "DBT_LOG_PATH": f"{home}/logs"})
        from sqlfluff.cli.commands import cli

        from mm_pipelines.dbt_cli import install_chdb_hook

        install_chdb_hook(Path(home) / "warehouse")
        cli([command, *(paths or DEFAULT_PATHS)], prog_name="sqlfluff")


if __name__ == "__main__":
    main()
