"""The import rules of docs/architecture.md hold (import-linter's contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_import_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    lint = shutil.which("lint-imports")
    assert lint, "import-linter is part of the test extra"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout


def test_the_architecture_page_names_every_contract() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]:
        assert contract["name"] in page, contract["name"]
