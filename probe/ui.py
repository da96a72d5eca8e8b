"""Everything the user sees on a terminal. The only module that imports rich.

The rest of the probe hands plain data (report dicts, diff objects,
verification results) to the functions here; scripts use ``--json`` and
``--quiet`` instead, which bypass rich entirely.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from probe.model import ControlStatus, TargetResult

VERDICT_STYLE = {
    "reachable": "bold green",
    "blocked": "bold red",
    "degraded": "bold yellow",
    "inconclusive": "bold blue",
}

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """One line on stderr, never a traceback. The message is text, never
    markup: it quotes file names and values (``pip install '.[lab]'``)."""
    stderr.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def warning(message: str) -> None:
    stderr.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)


def plain(message: str) -> None:
    # Plain print so that paths and JSON are never re-styled or wrapped.
    print(message)


def _verdict(text: str) -> str:
    return f"[{VERDICT_STYLE.get(text, '')}]{text}[/]"


class RunDisplay:
    """Progress for one test list: targets done / total and elapsed time."""

    def __init__(self, progress: Progress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task_id = task_id

    def controls_done(self, status: ControlStatus) -> None:
        if self._progress is None:
            return
        style = "green" if status.dns_ok and status.connect_ok else "yellow"
        self._progress.console.print(f"[{style}]controls:[/] {status.reason}")

    def target_done(self, result: TargetResult) -> None:
        if self._progress is None or self._task_id is None:
            return
        self._progress.advance(self._task_id)
        if result.verdict.verdict != "reachable":
            self._progress.update(
                self._task_id,
                description=f"{result.target.id} {_verdict(result.verdict.verdict)}",
            )


@contextmanager
def run_display(list_name: str, total: int, enabled: bool) -> Iterator[RunDisplay]:
    if not enabled:
        yield RunDisplay(None, None)
        return
    progress = Progress(
        TextColumn(f"[bold]{list_name}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=stderr,
        transient=False,
    )
    with progress:
        task_id = progress.add_task("", total=total)
        yield RunDisplay(progress, task_id)


# Methods that say the measurement itself failed, not the target.
DEAD_NETWORK_METHODS = {"resolver-unavailable", "network-unavailable"}


def summary(report: Mapping[str, Any], path: str) -> None:
    """Per feature: verdict in colour, method, endpoints reachable; then why."""
    status = report["controls"]["status"]
    healthy = status["dns_ok"] and status["connect_ok"]
    title = report["testlist"]["name"] + (" (controls ok)" if healthy else "")
    table = Table(title=title, title_justify="left")
    table.add_column("feature")
    table.add_column("verdict")
    table.add_column("method")
    table.add_column("reachable", justify="right")
    for feature in report["features"]:
        table.add_row(
            feature["name"],
            _verdict(feature["verdict"]),
            feature["method"],
            f"{feature['reachable']}/{feature['total']}",
        )
    stdout.print(table)
    features = report["features"]
    if features and all(f["method"] in DEAD_NETWORK_METHODS for f in features):
        # One cause for everything: say it once instead of once per feature.
        stdout.print(
            "[yellow]why:[/] every check failed the way the controls did, so nothing can be "
            f"said about blocking: {status['reason']}.{_guard_hint(status['reason'])}",
            soft_wrap=True,
        )
    else:
        _failing_targets(report)
    stdout.print(f"report: [bold]{path}[/]", soft_wrap=True)


# Enough to see the pattern on a screen; the report has every target.
FAILING_SHOWN_PER_FEATURE = 4


def _failing_targets(report: Mapping[str, Any]) -> None:
    """Which endpoints of the non-reachable features failed, and how."""
    table = Table(title="why", title_justify="left", show_lines=False)
    table.add_column("target")
    table.add_column("verdict")
    table.add_column("evidence")
    names = {f["id"]: f["name"] for f in report["features"]}
    failing: dict[str, list[Mapping[str, Any]]] = {}
    for target in report["targets"]:
        if target["verdict"] != "reachable":
            failing.setdefault(target["feature"], []).append(target)
    for feature_id, targets in failing.items():
        table.add_row(f"[bold]{names[feature_id]}[/]", "", "")
        for target in targets[:FAILING_SHOWN_PER_FEATURE]:
            table.add_row(
                f"  {target['id']}", f"{_verdict(target['verdict'])} {target['method']}", target["reason"]
            )
        if len(targets) > FAILING_SHOWN_PER_FEATURE:
            more = len(targets) - FAILING_SHOWN_PER_FEATURE
            table.add_row(f"  [dim]… {more} more in the report[/]", "", "")
    if failing:
        stdout.print(table)


def _guard_hint(reason: str) -> str:
    if "address_not_allowed" in reason:
        return " The destinations are outside PROBE_ALLOW_NETWORKS."
    return ""


def verification(valid: bool, key_id: str | None, reason: str, path: str) -> None:
    if valid:
        stdout.print(f"[bold green]valid[/] {path} (key {key_id})", soft_wrap=True)
    else:
        key = f" (key {key_id})" if key_id else ""
        stdout.print(f"[bold red]invalid[/] {path}{key}: {reason}", soft_wrap=True)


def diff_table(changes: list[Mapping[str, Any]], a_name: str, b_name: str) -> None:
    if not changes:
        stdout.print(f"no changes between {a_name} and {b_name}", soft_wrap=True)
        return
    table = Table(title=f"{a_name} → {b_name}", title_justify="left")
    table.add_column("scope")
    table.add_column("id")
    table.add_column("before")
    table.add_column("after")
    for change in changes:
        table.add_row(
            change["scope"],
            change["id"],
            _describe(change.get("before")),
            _describe(change.get("after")),
        )
    stdout.print(table)


def _describe(side: Mapping[str, Any] | None) -> str:
    if side is None:
        return "[dim]absent[/]"
    return f"{_verdict(side['verdict'])} {side['method']}"


def key_info(key_id: str, public_key: str, path: str) -> None:
    stdout.print(f"key id:     {key_id}\npublic key: {public_key}\nfile:       {path}", soft_wrap=True)
