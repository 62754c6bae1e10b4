"""Run records read back from run folders; the terminal table and the HTML index."""


import datetime as _dt
import html
import json
import math
import os
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import (
    INDEX_FILE,
    INTERACTIVE_DIR,
    LOG_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    STALE_AFTER_S,
    STATUS_FILE,
    _atomic_write_text,
    _now,
    _pid_alive,
    _process_start,
    _read_json,
)
from .tables import text_table


@dataclass(frozen=True)
class RunRecord:
    """One notebook run, as found in its directory.

    Attributes:
        path: the run directory.
        notebook: the source notebook that was run.
        parameters: the parameters passed to papermill (``params.json``).
        status: ``"ok"``, ``"failed"``, ``"interrupted"``, ``"running"`` (its runner is alive, or
            cannot be checked yet), ``"stale"`` (``status.json`` still says running but the
            runner's process is gone: killed, or the machine went down), ``"unreadable"`` when
            ``status.json`` cannot be read.
        duration_s: wall time of the execution in seconds (None while running).
        metrics: the notebook's metrics (``metrics.json``; empty when none were logged).
        error: the error for a failed run (``"ExcName: message (cell N)"``), else None.
        warnings: warnings from the run, e.g. parameters the notebook does not declare.
        started: ISO timestamp of the start.
        host: the machine the runner ran on (None for runs recorded before this was kept).
        pid: the runner's process id.
        heartbeat: ISO timestamp of the runner's last sign of life (refreshed while running).
        notebook_sha256: SHA-256 of the source notebook's bytes when the run started.
        resumed: True when ``run_notebooks(resume=True)`` skipped this run and returned this
            earlier, finished record instead.
    """

    path: Path
    notebook: Path
    parameters: dict[str, Any]
    status: str
    duration_s: float | None
    metrics: dict[str, Any]
    error: str | None = None
    warnings: tuple[str, ...] = ()
    started: str | None = None
    host: str | None = None
    pid: int | None = None
    heartbeat: str | None = None
    notebook_sha256: str | None = None
    resumed: bool = False

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.path.name

    @property
    def executed_notebook(self) -> Path:
        """The executed copy of the notebook (may be missing if the kernel never started)."""
        return self.path / Path(self.notebook).name

    @property
    def log_path(self) -> Path:
        """The run's log: papermill's messages and the kernel's stdout/stderr."""
        return self.path / LOG_FILE

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _age_s(timestamp: Any) -> float | None:
    try:
        then = _dt.datetime.fromisoformat(str(timestamp))
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:
        then = then.astimezone()
    return (_now() - then).total_seconds()


def _stale_reason(status: Mapping[str, Any]) -> str | None:
    """Why a run whose ``status.json`` says ``running`` is not running any more (None: it may be).

    On the runner's own host the PID is checked (and its process start time, so a reused PID
    does not count); elsewhere, or where PIDs cannot be checked, a heartbeat older than
    ``STALE_AFTER_S`` means the runner is gone. Runs recorded without runner details stay
    ``running``.
    """
    runner = status.get("runner")
    if not isinstance(runner, Mapping):
        return None
    pid, host = runner.get("pid"), runner.get("host")
    where = f"pid {pid} on {host}"
    if isinstance(pid, int) and host == socket.gethostname():
        alive = _pid_alive(pid)
        if alive is False:
            return f"stale: the runner ({where}) is gone and the run never finished (killed?)"
        if alive:
            recorded = runner.get("process_start")
            current = _process_start(pid) if recorded is not None else None
            if recorded is not None and current is not None and current != recorded:
                return f"stale: the runner ({where}) is gone (its PID now belongs to another process)"
            return None
    age = _age_s(status.get("heartbeat"))
    if age is not None and age > STALE_AFTER_S:
        return f"stale: no heartbeat from the runner ({where}) for {age:.0f} s"
    return None


def _record_from_dir(run_dir: Path) -> RunRecord | None:
    status_path = run_dir / STATUS_FILE
    if not status_path.is_file():
        return None
    try:
        status = _read_json(status_path)
        if not isinstance(status, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return RunRecord(run_dir, Path("?"), {}, "unreadable", None, {}, f"{STATUS_FILE}: {exc}")
    params: Any = status.get("parameters", {})
    if (run_dir / PARAMS_FILE).is_file():
        try:
            params = _read_json(run_dir / PARAMS_FILE, nonfinite=True)
        except (OSError, ValueError):
            pass
    metrics: Any = {}
    if (run_dir / METRICS_FILE).is_file():
        try:
            metrics = _read_json(run_dir / METRICS_FILE, nonfinite=True)
        except (OSError, ValueError):
            metrics = {}
    state = str(status.get("status", "unknown"))
    error = status.get("error")
    if state == "running":
        reason = _stale_reason(status)
        if reason is not None:
            state, error = "stale", reason
    runner = status.get("runner") if isinstance(status.get("runner"), Mapping) else {}
    pid = runner.get("pid")
    return RunRecord(
        path=run_dir,
        notebook=Path(status.get("notebook", "?")),
        parameters=params if isinstance(params, dict) else {},
        status=state,
        duration_s=status.get("duration_s"),
        metrics=metrics if isinstance(metrics, dict) else {},
        error=error,
        warnings=tuple(status.get("warnings") or ()),
        started=status.get("started"),
        host=runner.get("host"),
        pid=pid if isinstance(pid, int) else None,
        heartbeat=status.get("heartbeat"),
        notebook_sha256=status.get("notebook_sha256"),
    )


def summarize(runs_dir: str | os.PathLike[str] = "runs") -> list[RunRecord]:
    """Every run under ``runs_dir`` (directories holding a ``status.json``), oldest first.

    Raises FileNotFoundError naming ``runs_dir`` when it does not exist.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs_dir {str(root)!r} does not exist (no runs yet?)")
    records = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name != INTERACTIVE_DIR:
            rec = _record_from_dir(child)
            if rec is not None:
                records.append(rec)
    records.sort(key=lambda r: (r.started or "", r.name))
    return records


# ----------------------------------------------------------------------------------------------
# Formatting: terminal table and HTML page
# ----------------------------------------------------------------------------------------------


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _fmt_mapping(mapping: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in mapping.items())


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def _display_path(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _clip(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def format_table(records: Sequence[RunRecord], max_width: int | None = 60) -> str:
    """A plain-text table: run, notebook, status, duration, parameters, metrics.

    ``max_width`` clips the parameters and metrics columns (None: no clipping).
    """
    header = ["run", "notebook", "status", "duration", "parameters", "metrics"]
    rows = [
        [
            r.name,
            _display_path(r.notebook),
            r.status,
            _fmt_duration(r.duration_s),
            _clip(_fmt_mapping(r.parameters), max_width),
            _clip(_fmt_mapping(r.metrics), max_width),
        ]
        for r in records
    ]
    return text_table(header, rows)


_HTML_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f1f1f1; cursor: pointer; user-select: none; white-space: nowrap; }
th.group { cursor: default; text-align: center; }
tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nw, td.num { white-space: nowrap; }
.ok { color: #17692b; font-weight: 600; } .failed, .interrupted, .stale, .unreadable { color: #b3261e; font-weight: 600; }
.running { color: #8a6100; font-weight: 600; }
.err { color: #b3261e; font-size: 12px; max-width: 40em; white-space: pre-wrap; }
.warn { color: #8a6100; font-size: 12px; }
""".strip()

_HTML_SCRIPT = """
document.querySelectorAll("th[data-col]").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = +th.dataset.col;
    var asc = th.dataset.dir !== "asc"; th.dataset.dir = asc ? "asc" : "desc";
    var key = function (tr) { var td = tr.children[col]; return td ? (td.dataset.v !== undefined ? td.dataset.v : td.textContent) : ""; };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny) && isFinite(x) && isFinite(y)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
""".strip()


def _href(run_dir: Path, root: Path, filename: str) -> str:
    rel = os.path.relpath(run_dir / filename, root)
    return urllib.parse.quote(rel.replace(os.sep, "/"))


def _html_cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    text = html.escape(_fmt_value(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        sort = repr(float(value)) if isinstance(value, float) and math.isfinite(value) else str(value)
        return f'<td class="num" data-v="{html.escape(sort)}" title="{html.escape(repr(value))}">{text}</td>'
    return f"<td>{text}</td>"


def write_index(runs_dir: str | os.PathLike[str] = "runs", records: Sequence[RunRecord] | None = None) -> Path:
    """Write ``<runs_dir>/index.html``: one self-contained page listing every run.

    One row per run (status, start, duration, one column per parameter and per metric, links
    to the executed notebook, log and JSON files); click a header to sort. Returns its path.
    """
    root = Path(runs_dir)
    if records is None:
        records = summarize(root)
    param_names: list[str] = []
    metric_names: list[str] = []
    for r in records:
        for k in r.parameters:
            if k not in param_names:
                param_names.append(k)
        for k in r.metrics:
            if k not in metric_names:
                metric_names.append(k)

    fixed = ["run", "notebook", "status", "started", "duration"]
    head1 = "".join(f'<th rowspan="2" data-col="{i}">{h}</th>' for i, h in enumerate(fixed))
    col = len(fixed)
    if param_names:
        head1 += f'<th class="group" colspan="{len(param_names)}">parameters</th>'
    if metric_names:
        head1 += f'<th class="group" colspan="{len(metric_names)}">metrics</th>'
    links_col = col + len(param_names) + len(metric_names)
    head1 += f'<th rowspan="2" data-col="{links_col}">files</th><th rowspan="2" data-col="{links_col + 1}">notes</th>'
    head2 = ""
    for name in [*param_names, *metric_names]:
        head2 += f'<th data-col="{col}">{html.escape(name)}</th>'
        col += 1

    body = []
    for r in records:
        cells = [
            f'<td class="nw">{html.escape(r.name)}</td>',
            f"<td>{html.escape(_display_path(r.notebook))}</td>",
            f'<td class="{html.escape(r.status)}">{html.escape(r.status)}</td>',
            f'<td class="nw">{html.escape((r.started or "")[:19].replace("T", " "))}</td>',
            f'<td class="num" data-v="{r.duration_s if r.duration_s is not None else ""}">{_fmt_duration(r.duration_s)}</td>',
        ]
        cells += [_html_cell(r.parameters.get(k)) for k in param_names]
        cells += [_html_cell(r.metrics.get(k)) for k in metric_names]
        links = []
        for label, fname in [
            ("notebook", Path(r.notebook).name),
            ("log", LOG_FILE),
            ("params", PARAMS_FILE),
            ("metrics", METRICS_FILE),
            ("status", STATUS_FILE),
        ]:
            if (r.path / fname).is_file():
                links.append(f'<a href="{_href(r.path, root, fname)}">{label}</a>')
        cells.append(f'<td class="nw">{" · ".join(links)}</td>')
        notes = []
        if r.error:
            notes.append(f'<div class="err">{html.escape(r.error)}</div>')
        for w in r.warnings:
            notes.append(f'<div class="warn">{html.escape(w)}</div>')
        cells.append(f"<td>{''.join(notes)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")

    n_ok = sum(r.status == "ok" for r in records)
    n_failed = sum(r.status in ("failed", "interrupted", "stale", "unreadable") for r in records)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>otkit runs</title>
<style>
{_HTML_STYLE}
</style>
</head>
<body>
<h1>otkit runs</h1>
<p>{len(records)} runs: {n_ok} ok, {n_failed} failed. Generated {html.escape(_now().strftime("%Y-%m-%d %H:%M:%S %Z"))}.
Click a column header to sort.</p>
<table id="runs">
<thead>
<tr>{head1}</tr>
<tr>{head2}</tr>
</thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<script>
{_HTML_SCRIPT}
</script>
</body>
</html>
"""
    out = root / INDEX_FILE
    _atomic_write_text(out, page)
    return out
