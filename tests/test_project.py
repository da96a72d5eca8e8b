"""The project's own promises: the README's commands are what CI runs; packaging is complete."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    install_and_run, install_and_test = commands
    assert install_and_run.startswith("pip install . && probe run")
    assert "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def _packages_on_disk(top: str) -> set[str]:
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / top).rglob("__init__.py")
    }


def test_every_package_directory_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = _packages_on_disk("probe")
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to pyproject's packages"
    assert config["package-dir"]["probe.testlists"] == "testlists"


def test_the_lab_ships_apart_and_every_lab_package_in_it() -> None:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert not any(name.startswith("probe_lab") for name in core["packages"])
    lab = tomllib.loads((ROOT / "lab" / "pyproject.toml").read_text())
    listed = set(lab["tool"]["setuptools"]["packages"])
    on_disk = _packages_on_disk("probe_lab")
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to lab/pyproject.toml's packages"
    assert lab["project"]["entry-points"]["probe.commands"]["lab"] == "probe_lab.cli:main"


def test_the_probe_never_imports_the_lab() -> None:
    """``probe verify`` must not load nftables plumbing: importing the CLI and
    building its parser (every subcommand) pulls in no lab module."""
    code = (
        "import sys, probe.cli; probe.cli._parser(); "
        "print([m for m in sys.modules if m.split('.')[0] == 'probe_lab'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
