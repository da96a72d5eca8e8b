"""What every command shares: --json, one line per input error, exit 3 for
a bug (--debug shows it), shell completion, and no side effects in `keys show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe import cli
from probe.net.errors import failure_from_exception

ROOT = Path(__file__).resolve().parent.parent
WHATSAPP = str(ROOT / "testlists" / "whatsapp.yaml")


def probe(*args: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True, text=True, env={**env, **extra}, cwd=ROOT, timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PROBE_CONFIG_DIR": str(tmp_path / "config"),
        "PROBE_ALLOW_NETWORKS": "127.0.0.0/8",
        "PYTHONPATH": str(ROOT),
    }


def test_keys_show_never_creates_a_key(env: dict[str, str]) -> None:
    done = probe("keys", "show", env=env)
    assert done.returncode == 2
    assert "no signing key yet" in done.stderr and "probe keys generate" in done.stderr
    assert not Path(env["PROBE_CONFIG_DIR"]).exists()


def test_keys_json_is_the_same_key(env: dict[str, str]) -> None:
    made = json.loads(probe("keys", "generate", "--json", env=env).stdout)
    shown = json.loads(probe("keys", "show", "--json", env=env).stdout)
    assert made == shown
    assert set(shown) == {"key_id", "public_key", "path"}
    assert shown["path"] == str(Path(env["PROBE_CONFIG_DIR"]) / "signing-key.pem")


def test_lists_validate_json_says_what_is_wrong_where(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: '1'\nupdated: 2026-01-01\nfeatures: 7\n")
    done = probe("lists", "validate", "--json", WHATSAPP, str(bad), env=env)
    assert done.returncode == 2
    good, wrong = (json.loads(line) for line in done.stdout.splitlines())
    assert good["ok"] and good["name"] == "whatsapp" and good["targets"] > 0
    assert not wrong["ok"] and wrong["line"] == 4 and wrong["error"].startswith(f"{bad}:4:")


def test_verify_json(env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "fake.json"
    fake.write_text("{}")
    done = probe("verify", "--json", str(fake), env=env)
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["report"] == str(fake) and result["valid"] is False and result["reason"]


def test_bad_asn_is_an_input_error_before_the_run(env: dict[str, str]) -> None:
    done = probe("run", WHATSAPP, "--probe-asn", "0", "--quiet", env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--probe-asn" in done.stderr


def test_a_bug_is_one_line_exit_3_and_debug_shows_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(cli, "cmd_verify", broken)
    assert cli.main(["verify", "x.json"]) == cli.EXIT_BUG == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "--debug" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    assert cli.main(["verify", "x.json", "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_an_input_error_is_not_a_bug(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert cli.main(["diff", str(missing), str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "internal error" not in err


def test_debug_shows_the_exception_behind_unknown_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check inside a command maps an exception it does not know: with
    --debug, stderr says which one; without, nothing is printed."""

    def command_with_a_strange_failure(args: object) -> int:
        assert failure_from_exception(ZeroDivisionError("the cause")) == "unknown_failure"
        return 0

    monkeypatch.setattr(cli, "cmd_verify", command_with_a_strange_failure)
    assert cli.main(["verify", "x.json"]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(["--debug", "verify", "x.json"]) == 0
    assert "unknown_failure: ZeroDivisionError: the cause" in capsys.readouterr().err


def test_the_lab_command_says_how_to_install_the_lab_when_it_is_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda **_: ())
    assert cli.main(["lab", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install '.[lab]'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(env: dict[str, str], shell: str) -> None:
    done = probe("completion", shell, env=env)
    assert done.returncode == 0
    assert "probe" in done.stdout and "_ARGCOMPLETE" in done.stdout


@pytest.mark.parametrize(
    ("line", "expected"),
    [("probe ", {"run", "verify", "diff", "replay", "keys", "lists", "lab", "completion"}),
     ("probe run --pa", {"--parallel"}),
     ("probe keys ", {"show", "generate"})],
)
def test_completion_answers_a_shell(env: dict[str, str], tmp_path: Path, line: str, expected: set[str]) -> None:
    """What bash asks through the script: argcomplete's protocol, answered by the probe itself."""
    out = tmp_path / "completions"
    done = probe(
        env=env, _ARGCOMPLETE="1", _ARGCOMPLETE_SHELL="bash", _ARGCOMPLETE_IFS="\n",
        COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE_STDOUT_FILENAME=str(out),
    )
    assert done.returncode == 0, done.stderr
    offered = {word.strip() for word in out.read_text().splitlines()}
    assert expected <= offered
