"""Batch runs of notebooks with papermill, their metrics, and a summary of every run.

Three pieces, usable from Python and from the command line:

* :func:`log_metrics` is what a notebook calls to record its headline figures. Run by
  papermill (through this module), the values go to the run's ``metrics.json`` (the path is in
  the environment variable ``OTKIT_METRICS_PATH``); run by hand, they go to
  ``runs/interactive/<notebook or "session">/metrics.json`` under the repository root (found by
  looking upward from the current directory for the ``pyproject.toml`` of otkit; else the
  current directory), so interactive runs never write into tracked files.
* :func:`run_notebooks` executes every notebook with every parameter set, one run directory
  each: ``<runs_dir>/<YYYYmmdd-HHMMSS>-<notebook stem>[-<param hash or name>]/`` holding the
  executed notebook, ``params.json``, ``metrics.json``, ``status.json`` and ``log.txt``. Files
  are written atomically, a directory is never reused, and a failing notebook is recorded
  (``status.json`` says ``"failed"`` with the error) while the batch goes on.
* :func:`summarize` reads a runs directory back; :func:`write_index` renders it to a
  self-contained ``index.html`` (the runner refreshes it after every batch).

Command line (``python -m otkit.runs`` or ``python -m otkit run``)::

    python -m otkit.runs notebooks/01_x.ipynb -p n 500 -p epsilon 0.05 --quick
    python -m otkit.runs notebooks/*.ipynb --grid grid.yaml --runs-dir runs
    python -m otkit.runs summary --runs-dir runs

This module imports neither Jupyter nor papermill at import time: notebooks can call
:func:`log_metrics` with only otkit installed; papermill is imported when a run starts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import html
import itertools
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import traceback as _traceback
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RunRecord",
    "log_metrics",
    "current_metrics",
    "reset_metrics",
    "default_metrics_path",
    "run_notebook",
    "run_notebooks",
    "summarize",
    "write_index",
    "format_table",
    "parse_value",
    "parse_run_args",
    "load_grid",
    "expand_grid",
    "main",
    "METRICS_ENV",
    "KERNEL_NAME",
]

#: Environment variable holding the metrics file of the current run (set by the runner).
METRICS_ENV = "OTKIT_METRICS_PATH"
#: Kernel used for every run.
KERNEL_NAME = "python3"

STATUS_FILE = "status.json"
PARAMS_FILE = "params.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.txt"
INDEX_FILE = "index.html"
INTERACTIVE_DIR = "interactive"

#: Lists (flattened) longer than this are refused by :func:`log_metrics`: save arrays to a file.
MAX_METRIC_ELEMENTS = 10_000

_UNKNOWN_PARAMETER = re.compile(r"Passed unknown parameter:\s*(\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ----------------------------------------------------------------------------------------------
# Small file helpers
# ----------------------------------------------------------------------------------------------


_FILE_MODE: int | None = None


def _file_mode() -> int:
    """0o666 minus the umask: what open() would give (mkstemp's files are 0o600)."""
    global _FILE_MODE
    if _FILE_MODE is None:
        mask = os.umask(0o022)
        os.umask(mask)
        _FILE_MODE = 0o666 & ~mask
    return _FILE_MODE


def _mkstemp(folder: Path, name: str) -> tuple[int, str]:
    """A temp file beside ``folder/name`` (hidden, same filesystem) with ordinary permissions."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        pass
    return fd, tmp


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _mkstemp(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _atomic_write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _now() -> _dt.datetime:
    return _dt.datetime.now().astimezone()


# ----------------------------------------------------------------------------------------------
# Metrics: the helper notebooks call
# ----------------------------------------------------------------------------------------------

_METRICS: dict[str, Any] = {}


def _to_jsonable(value: Any, key: str, _count: list[int] | None = None) -> Any:
    """Convert a metric value to plain JSON types; tensors and numpy values via item/tolist."""
    count = _count if _count is not None else [0]
    count[0] += 1
    if count[0] > MAX_METRIC_ELEMENTS:
        raise ValueError(
            f"log_metrics: metric {key!r} has more than {MAX_METRIC_ELEMENTS} elements; "
            "metrics are headline figures: save large arrays to a file and log a summary"
        )
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v, key, count) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"log_metrics: metric {key!r} is a dict with a non-string key {k!r}")
            out[k] = _to_jsonable(v, key, count)
        return out
    # torch tensors, numpy arrays and numpy scalars (duck-typed: no imports here).
    numel = getattr(value, "numel", None) or getattr(value, "size", None)
    try:
        n = numel() if callable(numel) else numel
    except TypeError:
        n = None
    if hasattr(value, "item") and n == 1 and getattr(value, "ndim", 0) == 0:
        return _to_jsonable(value.item(), key, count)
    if hasattr(value, "tolist"):
        if isinstance(n, int) and n > MAX_METRIC_ELEMENTS:
            raise ValueError(
                f"log_metrics: metric {key!r} has {n} elements (more than {MAX_METRIC_ELEMENTS}); "
                "save large arrays to a file and log a summary"
            )
        if hasattr(value, "detach"):  # torch: off the autograd graph and onto the CPU
            value = value.detach().cpu()
        return _to_jsonable(value.tolist(), key, count)
    if hasattr(value, "item"):
        return _to_jsonable(value.item(), key, count)
    raise TypeError(
        f"log_metrics: metric {key!r} has type {type(value).__name__}; use numbers, strings, "
        "bools, None, small lists or dicts of them (tensors and numpy values are converted)"
    )


def _find_repo_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` whose pyproject.toml names the otkit project."""
    for folder in [start, *start.parents]:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _is_otkit_pyproject(pyproject):
            return folder
    return None


def _is_otkit_pyproject(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    try:
        import tomllib  # Python 3.11+

        name = tomllib.loads(text).get("project", {}).get("name")
        return name == "otkit"
    except ImportError:  # Python 3.10: a line `name = "otkit"` in the [project] table
        section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        return bool(section and re.search(r"^name\s*=\s*[\"']otkit[\"']\s*$", section.group(1), re.M))
    except Exception:
        return False


def _session_name() -> str:
    """The running notebook's stem when Jupyter or VS Code tells us, else ``"session"``."""
    candidate = os.environ.get("JPY_SESSION_NAME")
    if not candidate and "IPython" in sys.modules:
        try:
            ip = sys.modules["IPython"].get_ipython()
            candidate = ip.user_ns.get("__vsc_ipynb_file__") if ip is not None else None
        except Exception:
            candidate = None
    if not candidate:
        return "session"
    stem = Path(str(candidate)).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem or "session"


def default_metrics_path() -> Path:
    """Where :func:`log_metrics` writes: ``$OTKIT_METRICS_PATH`` when set, else the default.

    The default is ``runs/interactive/<notebook or "session">/metrics.json`` under the
    repository root (found by looking upward from the current directory for otkit's
    ``pyproject.toml``), else under the current directory. ``runs/`` is git-ignored.
    """
    env = os.environ.get(METRICS_ENV)
    if env:
        return Path(env)
    cwd = Path.cwd()
    base = _find_repo_root(cwd) or cwd
    return base / "runs" / INTERACTIVE_DIR / _session_name() / METRICS_FILE


def log_metrics(values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """Record a notebook's headline metrics, the same way by hand and under papermill.

    Values are numbers, strings, bools, None, or small (nested) lists and dicts of them; torch
    tensors and numpy arrays or scalars are converted with ``.item()`` / ``.tolist()``. They
    are merged (new values win) into the JSON file at ``$OTKIT_METRICS_PATH`` when that is set
    (the runner sets it to the run's ``metrics.json``), else into
    ``runs/interactive/<notebook or "session">/metrics.json`` under the repository root (see
    :func:`default_metrics_path`). The file is written atomically.

    Args:
        values: an optional mapping of metrics (for names that are not identifiers).
        **kwargs: metrics by name.

    Returns:
        The merged content of the metrics file.

    Example:
        >>> log_metrics(w2=0.123, n_iter=42, converged=True)  # doctest: +SKIP
    """
    new: dict[str, Any] = {}
    if values is not None:
        if not isinstance(values, Mapping):
            raise TypeError(f"log_metrics: values must be a mapping of name -> value, got {type(values).__name__}")
        new.update(values)
    new.update(kwargs)
    converted: dict[str, Any] = {}
    for key, value in new.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"log_metrics: metric names must be non-empty strings, got {key!r}")
        converted[key] = _to_jsonable(value, key)

    path = default_metrics_path()
    merged: dict[str, Any] = {}
    if path.is_file():
        try:
            existing = _read_json(path)
        except (OSError, ValueError):
            existing = None
        if isinstance(existing, dict):
            merged.update(existing)
    merged.update(converted)
    _atomic_write_json(path, merged)
    _METRICS.update(converted)
    return merged


def current_metrics() -> dict[str, Any]:
    """A copy of the metrics logged by this process (kernel) so far."""
    return json.loads(json.dumps(_METRICS))


def reset_metrics() -> None:
    """Forget the metrics kept in memory (the files are left as they are)."""
    _METRICS.clear()


# ----------------------------------------------------------------------------------------------
# Parameters: values as papermill's CLI parses them, and grids
# ----------------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """Parse a command-line value as papermill's ``-p`` does.

    ``"True"``/``"False"`` -> bool, ``"None"`` -> None, an int literal -> int, a float literal
    -> float, anything else -> the string itself.
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _check_parameters(params: Any, where: str) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: a parameter set must be a mapping of name -> value, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: parameter name {name!r} is not a Python identifier")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: parameter {name!r} = {value!r} is not JSON-serializable "
                "(use numbers, strings, bools, None, lists and dicts)"
            ) from exc
        out[name] = value
    return out


def expand_grid(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cartesian product of a mapping ``name -> list of values`` (a scalar is one value).

    To give one parameter a list as its single value, wrap it: ``{"sizes": [[10, 20]]}``.
    An empty mapping gives one empty parameter set.
    """
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid: expected a mapping of name -> list of values, got {type(grid).__name__}")
    names = list(grid)
    choices = []
    for name in names:
        value = grid[name]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise ValueError(f"grid: parameter {name!r} has an empty list of values")
        choices.append(values)
    sets = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
    return [_check_parameters(s, "grid") for s in sets]


def _sets_from_data(data: Any, where: str) -> list[dict[str, Any]]:
    """Parameter sets from parsed grid data (see :func:`load_grid` for the accepted shapes)."""
    if isinstance(data, Mapping):
        keys = set(data)
        grid_ok = "grid" not in data or isinstance(data["grid"], Mapping) or (
            isinstance(data["grid"], list) and all(isinstance(g, Mapping) for g in data["grid"])
        )
        runs_ok = "runs" not in data or (
            isinstance(data["runs"], list) and all(isinstance(r, Mapping) for r in data["runs"])
        )
        structured = bool(keys) and keys <= {"grid", "runs"} and grid_ok and runs_ok
        if structured:
            sets: list[dict[str, Any]] = []
            grids = data.get("grid")
            for g in [grids] if isinstance(grids, Mapping) else (grids or []):
                sets.extend(expand_grid(g))
            for i, r in enumerate(data.get("runs") or []):
                sets.append(_check_parameters(r, f"{where}: runs[{i}]"))
            if not sets:
                raise ValueError(f"{where}: 'grid' and 'runs' give no parameter set")
            return sets
        return expand_grid(data)
    if isinstance(data, list):
        if not data:
            raise ValueError(f"{where}: the list of parameter sets is empty")
        out = []
        for i, item in enumerate(data):
            if not isinstance(item, Mapping):
                raise ValueError(f"{where}: item {i} of the list is a {type(item).__name__}, not a mapping of parameters")
            out.append(_check_parameters(item, f"{where}: item {i}"))
        return out
    raise ValueError(
        f"{where}: expected a mapping (name -> list of values, expanded as a grid) or a list of "
        f"parameter mappings, got {type(data).__name__}"
    )


def load_grid(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read parameter sets from a YAML or JSON file.

    Accepted shapes:

    * a mapping ``name -> list of values``: the cartesian product (a scalar is a single value);
    * a list of mappings: explicit parameter sets, run as given;
    * a mapping with keys ``grid`` (a mapping, or a list of mappings) and/or ``runs`` (a list
      of mappings): the grid's product followed by the explicit sets.

    ``.json`` files are read as JSON, ``.yaml``/``.yml`` as YAML, anything else as JSON and
    then YAML. Raises FileNotFoundError or ValueError naming the file.
    """
    p = Path(path)
    where = f"grid file {str(p)!r}"
    if not p.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where} is not valid JSON: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except ValueError:
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - pyyaml ships with the notebook stack
                raise ValueError(f"{where}: reading YAML needs pyyaml (pip install pyyaml)") from exc
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                kind = "YAML" if suffix in (".yaml", ".yml") else "YAML nor JSON"
                raise ValueError(f"{where} is not valid {kind}: {exc}") from exc
    return _sets_from_data(data, where)


def _parse_yaml_snippet(text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover
        raise ValueError("-y/--parameters-yaml needs pyyaml (pip install pyyaml)") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"-y/--parameters-yaml {text!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"-y/--parameters-yaml {text!r} must be a mapping of name: value, got {type(data).__name__}")
    return _check_parameters(data, "-y/--parameters-yaml")


# ----------------------------------------------------------------------------------------------
# Run records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """One notebook run, as found in its directory.

    Attributes:
        path: the run directory.
        notebook: the source notebook that was run.
        parameters: the parameters passed to papermill (``params.json``).
        status: ``"ok"``, ``"failed"``, ``"interrupted"`` or ``"running"`` (still going, or the
            process died), ``"unreadable"`` when ``status.json`` cannot be read.
        duration_s: wall time of the execution in seconds (None while running).
        metrics: the notebook's metrics (``metrics.json``; empty when none were logged).
        error: the error for a failed run (``"ExcName: message (cell N)"``), else None.
        warnings: warnings from the run, e.g. parameters the notebook does not declare.
        started: ISO timestamp of the start.
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
            params = _read_json(run_dir / PARAMS_FILE)
        except (OSError, ValueError):
            pass
    metrics: Any = {}
    if (run_dir / METRICS_FILE).is_file():
        try:
            metrics = _read_json(run_dir / METRICS_FILE)
        except (OSError, ValueError):
            metrics = {}
    return RunRecord(
        path=run_dir,
        notebook=Path(status.get("notebook", "?")),
        parameters=params if isinstance(params, dict) else {},
        status=str(status.get("status", "unknown")),
        duration_s=status.get("duration_s"),
        metrics=metrics if isinstance(metrics, dict) else {},
        error=status.get("error"),
        warnings=tuple(status.get("warnings") or ()),
        started=status.get("started"),
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
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


_HTML_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f1f1f1; cursor: pointer; user-select: none; white-space: nowrap; }
th.group { cursor: default; text-align: center; }
tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nw, td.num { white-space: nowrap; }
.ok { color: #17692b; font-weight: 600; } .failed, .interrupted, .unreadable { color: #b3261e; font-weight: 600; }
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
    n_failed = sum(r.status in ("failed", "interrupted", "unreadable") for r in records)
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


# ----------------------------------------------------------------------------------------------
# Running notebooks
# ----------------------------------------------------------------------------------------------


def _param_hash(params: Mapping[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:8]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "run"


def _make_run_dir(runs_dir: Path, notebook: Path, suffix: str | None, started: _dt.datetime) -> Path:
    """Create a fresh run directory (atomically, with os.mkdir); add -2, -3, ... on collision."""
    base = f"{started.strftime('%Y%m%d-%H%M%S')}-{_safe_name(notebook.stem)}"
    if suffix:
        base += f"-{_safe_name(suffix)}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for i in itertools.count(1):
        candidate = runs_dir / (base if i == 1 else f"{base}-{i}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _fds_to(stream: Any) -> Iterator[None]:
    """Send this process's file descriptors 1 and 2 to ``stream`` for a while.

    The kernel process inherits them, so its own stdout/stderr (start-up warnings, C-level
    messages, a crash) land in the run log instead of the terminal. Restored afterwards.
    """
    saved: list[tuple[int, int]] = []
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:  # pragma: no cover
            pass
    try:
        stream.flush()
        target = stream.fileno()
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:
                continue
        for fd, _ in saved:
            os.dup2(target, fd)
    except (OSError, AttributeError, ValueError):  # pragma: no cover - redirect is best effort
        pass
    try:
        yield
    finally:
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:  # pragma: no cover
                pass
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


class _LogCapture(logging.Handler):
    """Copies papermill's log records to the run log and collects unknown-parameter warnings."""

    def __init__(self, stream: Any) -> None:
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.unknown: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            m = _UNKNOWN_PARAMETER.search(msg)
            if m:
                self.unknown.append(m.group(1))
            self.stream.write(f"[{record.levelname.lower()} {record.name}] {msg.rstrip()}\n")
            self.stream.flush()
        except Exception:  # pragma: no cover - logging must never break a run
            self.handleError(record)


def _describe_error(exc: BaseException) -> tuple[str, str]:
    """(one-line error, full traceback text without colours) for status.json and the log."""
    ename = getattr(exc, "ename", None)
    if ename is not None:  # PapermillExecutionError: the notebook's own exception
        evalue = _ANSI.sub("", str(getattr(exc, "evalue", ""))).strip()
        evalue = evalue.splitlines()[0] if evalue else ""
        cell = getattr(exc, "exec_count", None)
        short = f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell is not None else "")
        tb = _ANSI.sub("", "\n".join(getattr(exc, "traceback", []) or []))
        return short, tb or short
    message = _ANSI.sub("", str(exc)).strip()
    first = next((line for line in message.splitlines() if line.strip()), "")
    short = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return short, _ANSI.sub("", "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _import_papermill() -> Any:
    try:
        import papermill
    except ImportError as exc:
        raise ImportError(
            "running notebooks needs papermill (and a Jupyter kernel): "
            "pip install -e '.[notebooks]' or pip install -r requirements.txt"
        ) from exc
    return papermill


def _resolve_notebooks(notebooks: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(notebooks, (str, os.PathLike)):
        notebooks = [notebooks]
    paths = [Path(nb) for nb in notebooks]
    if not paths:
        raise ValueError("notebooks: no notebook given")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"notebooks: {str(p)!r} does not exist (or is not a file)")
        if p.suffix != ".ipynb":
            raise ValueError(f"notebooks: {str(p)!r} is not a .ipynb file")
    return [p.resolve() for p in paths]


def _resolve_parameter_sets(parameter_sets: Any) -> list[dict[str, Any]]:
    if parameter_sets is None:
        return [{}]
    if isinstance(parameter_sets, Mapping):
        return [_check_parameters(parameter_sets, "parameter_sets")]
    if isinstance(parameter_sets, (str, bytes)) or not isinstance(parameter_sets, Iterable):
        raise TypeError(
            "parameter_sets: expected a mapping (one run) or an iterable of mappings, "
            f"got {type(parameter_sets).__name__}"
        )
    sets = [_check_parameters(p, f"parameter_sets[{i}]") for i, p in enumerate(parameter_sets)]
    if not sets:
        raise ValueError("parameter_sets: empty; pass [{}] to run with the notebook's defaults")
    return sets


def run_notebook(
    notebook: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    runs_dir: str | os.PathLike[str] = "runs",
    run_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    quick: bool = False,
    timeout: float | None = None,
    kernel_name: str = KERNEL_NAME,
) -> RunRecord:
    """Execute one notebook with papermill into a new run directory and return its record.

    Args:
        notebook: the ``.ipynb`` to run; the kernel's working directory is its folder.
        parameters: values injected after the cell tagged ``parameters``.
        runs_dir: where the run directory is created (ignored when ``run_dir`` is given).
        run_dir: an exact run directory; FileExistsError if it exists (runs are never reused).
        name: suffix of the directory name instead of the parameters' hash.
        quick: also pass ``quick=True``.
        timeout: per-cell execution timeout in seconds (None: no limit).
        kernel_name: Jupyter kernel to run (default ``python3``).

    A failure inside the notebook does not raise: the record has ``status="failed"`` and the
    error, and the executed notebook (up to the failing cell), log and metrics are kept.
    KeyboardInterrupt is recorded as ``"interrupted"`` and re-raised.
    """
    nb_path = _resolve_notebooks([notebook])[0]
    params = _check_parameters(dict(parameters or {}), "parameters")
    _import_papermill()
    if quick:
        params["quick"] = True
    started = _now()
    if run_dir is not None:
        directory = Path(run_dir).resolve()
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(directory)
        except FileExistsError:
            raise FileExistsError(
                f"run_dir {str(directory)!r} already exists: finished runs are never overwritten; "
                "choose another directory"
            ) from None
    else:
        suffix = name if name else (_param_hash(params) if params else None)
        directory = _make_run_dir(Path(runs_dir).resolve(), nb_path, suffix, started)
    return _execute(nb_path, params, directory, started, timeout, kernel_name)


def _execute(
    nb_path: Path,
    params: dict[str, Any],
    directory: Path,
    started: _dt.datetime,
    timeout: float | None,
    kernel_name: str,
) -> RunRecord:
    metrics_path = directory / METRICS_FILE
    executed_path = directory / nb_path.name
    status: dict[str, Any] = {
        "status": "running",
        "notebook": str(nb_path),
        "parameters": params,
        "kernel": kernel_name,
        "cwd": str(nb_path.parent),
        "started": started.isoformat(timespec="seconds"),
        "finished": None,
        "duration_s": None,
        "error": None,
        "warnings": [],
    }
    _atomic_write_json(directory / PARAMS_FILE, params)
    _atomic_write_json(directory / STATUS_FILE, status)

    fd, log_tmp = _mkstemp(directory, LOG_FILE)
    nb_tmp = directory / f".{nb_path.stem}.partial.ipynb"
    error: BaseException | None = None
    unknown: list[str] = []
    t0 = time.perf_counter()
    with os.fdopen(fd, "w", encoding="utf-8") as log:
        log.write(f"notebook:   {nb_path}\n")
        log.write(f"parameters: {json.dumps(params)}\n")
        log.write(f"kernel:     {kernel_name}\n")
        log.write(f"cwd:        {nb_path.parent}\n")
        log.write(f"{METRICS_ENV}={metrics_path}\n")
        log.write(f"started:    {status['started']}\n\n")
        log.flush()

        pm_logger = logging.getLogger("papermill")
        handler = _LogCapture(log)
        saved_logger = (pm_logger.level, pm_logger.propagate)
        saved_env = {k: os.environ.get(k) for k in (METRICS_ENV, "PYDEVD_DISABLE_FILE_VALIDATION")}
        pm_logger.addHandler(handler)
        pm_logger.setLevel(logging.INFO)
        pm_logger.propagate = False
        os.environ[METRICS_ENV] = str(metrics_path)
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiets the debugger's frozen-modules note
        try:
            papermill = _import_papermill()
            engine_kwargs: dict[str, Any] = {"store_widget_state": False}
            if timeout is not None:
                engine_kwargs["execution_timeout"] = timeout
            with _fds_to(log):
                papermill.execute_notebook(
                    str(nb_path),
                    str(nb_tmp),
                    parameters=params,
                    kernel_name=kernel_name,
                    progress_bar=False,
                    stdout_file=log,
                    stderr_file=log,
                    cwd=str(nb_path.parent),
                    **engine_kwargs,
                )
        except KeyboardInterrupt as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the batch goes on
            error = exc
        finally:
            duration = time.perf_counter() - t0
            pm_logger.removeHandler(handler)
            pm_logger.setLevel(saved_logger[0])
            pm_logger.propagate = saved_logger[1]
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            unknown = handler.unknown

        warnings_list = [
            f"unknown parameter {p!r}: the notebook's parameters cell does not define it "
            "(papermill injected it anyway)"
            for p in unknown
        ]
        if isinstance(error, KeyboardInterrupt):
            state, short, tb = "interrupted", "KeyboardInterrupt: the run was interrupted", ""
        elif error is not None:
            state = "failed"
            short, tb = _describe_error(error)
        else:
            state, short, tb = "ok", None, ""
        log.write("\n")
        for w in warnings_list:
            log.write(f"WARNING: {w}\n")
        if tb:
            log.write(f"\n{tb.rstrip()}\n")
        log.write(f"\nstatus: {state} in {duration:.2f} s\n")
        if short:
            log.write(f"error: {short}\n")
        log.flush()
        os.fsync(log.fileno())
    os.replace(log_tmp, directory / LOG_FILE)

    if nb_tmp.exists():
        os.replace(nb_tmp, executed_path)
    metrics: Any = {}
    if metrics_path.is_file():
        try:
            metrics = _read_json(metrics_path)
        except (OSError, ValueError):
            metrics = {}
    else:
        _atomic_write_json(metrics_path, {})
    metrics = metrics if isinstance(metrics, dict) else {}

    status.update(
        status=state,
        finished=_now().isoformat(timespec="seconds"),
        duration_s=round(duration, 3),
        error=short,
        warnings=warnings_list,
    )
    if tb and state == "failed":
        status["traceback"] = tb
    _atomic_write_json(directory / STATUS_FILE, status)
    record = RunRecord(
        path=directory,
        notebook=nb_path,
        parameters=params,
        status=state,
        duration_s=status["duration_s"],
        metrics=metrics,
        error=short,
        warnings=tuple(warnings_list),
        started=status["started"],
    )
    if isinstance(error, KeyboardInterrupt):
        raise error
    return record


def run_notebooks(
    notebooks: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    parameter_sets: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    quick: bool = False,
    timeout: float | None = None,
    *,
    name: str | None = None,
    kernel_name: str = KERNEL_NAME,
    progress: bool = True,
) -> list[RunRecord]:
    """Run every notebook with every parameter set; one new run directory per run.

    Args:
        notebooks: one path or several (``.ipynb``); all are checked before anything runs.
        parameter_sets: one mapping (a single run per notebook), an iterable of mappings (use
            :func:`expand_grid` / :func:`load_grid` for grids), or None (the defaults).
        runs_dir: base folder of the run directories (created if needed).
        quick: pass ``quick=True`` to every run.
        timeout: per-cell execution timeout in seconds (None: no limit).
        name: directory-name suffix instead of the parameters' hash (with several parameter
            sets, ``<name>-<hash>``).
        kernel_name: Jupyter kernel (default ``python3``).
        progress: show a tqdm progress bar over the runs (on stderr).

    Returns:
        One :class:`RunRecord` per run, in order (notebook-major). Failed runs have
        ``status="failed"``; the others are complete regardless. ``<runs_dir>/index.html`` is
        refreshed at the end.
    """
    nb_paths = _resolve_notebooks(notebooks)
    sets = _resolve_parameter_sets(parameter_sets)
    if quick:
        sets = [{**s, "quick": True} for s in sets]
    _import_papermill()
    root = Path(runs_dir).resolve()
    jobs = [(nb, s) for nb in nb_paths for s in sets]

    from tqdm.auto import tqdm

    records: list[RunRecord] = []
    bar = tqdm(total=len(jobs), unit="run", desc="otkit runs", disable=not progress, file=sys.stderr)
    try:
        for nb, params in jobs:
            if name:
                suffix = name if len(sets) == 1 else f"{name}-{_param_hash(params)}"
            else:
                suffix = _param_hash(params) if params else None
            started = _now()
            directory = _make_run_dir(root, nb, suffix, started)
            bar.set_postfix_str(directory.name, refresh=True)
            record = _execute(nb, params, directory, started, timeout, kernel_name)
            records.append(record)
            if record.status != "ok" and progress:
                bar.write(f"FAILED {record.name}: {record.error}")
            for w in record.warnings:
                if progress:
                    bar.write(f"warning {record.name}: {w}")
            bar.update(1)
    finally:
        bar.close()
        try:
            write_index(root)
        except OSError:  # pragma: no cover - the page is a convenience; never hide a run's outcome
            pass
    return records


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

_PROG = "python -m otkit.runs"


def _run_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} [run]" if prog == _PROG else f"{prog} run",
        description=(
            "Execute notebooks with papermill (kernel python3, working directory = each "
            "notebook's folder), one run directory per notebook and parameter set under "
            "--runs-dir: the executed notebook, params.json, metrics.json, status.json, log.txt."
        ),
        epilog=(
            "Values of -p are parsed as papermill does: True/False -> bool, None, ints, floats, "
            "else strings. A grid file (YAML or JSON) is a mapping name -> list of values "
            "(cartesian product), a list of parameter mappings, or {grid: ..., runs: [...]}. "
            "-p/-y/-r values apply to every run. Exit status: 0 if every run is ok, 1 if any "
            "failed, 2 on a usage error."
        ),
    )
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help=".ipynb files to run")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter, value parsed like papermill's -p (repeatable)")
    p.add_argument("-r", "--parameter-raw", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter kept as a string (repeatable)")
    p.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                   help='parameters as a YAML mapping, e.g. -y "{n: 100, eps: [0.1, 0.01]}" (repeatable)')
    p.add_argument("-g", "--grid", action="append", default=[], metavar="FILE",
                   help="YAML/JSON grid file; its parameter sets are concatenated (repeatable)")
    p.add_argument("--quick", action="store_true", help="set quick=True for every run")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="base folder of the runs (default: runs)")
    p.add_argument("--name", default=None, help="run-directory suffix instead of the parameters' hash")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per-cell timeout")
    p.add_argument("--kernel", default=KERNEL_NAME, help=f"Jupyter kernel (default: {KERNEL_NAME})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _summary_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} summary",
        description="Print a table of every run under --runs-dir and write <runs-dir>/index.html.",
    )
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="folder of the runs (default: runs)")
    p.add_argument("--wide", action="store_true", help="do not clip the parameters and metrics columns")
    p.add_argument("--no-html", action="store_true", help="only print the table")
    return p


def parse_run_args(argv: Sequence[str], prog: str = _PROG) -> tuple[list[Path], list[dict[str, Any]], argparse.Namespace]:
    """Parse the ``run`` command line into (notebooks, parameter sets, options).

    ``-y`` snippets apply first, then ``-p`` (values through :func:`parse_value`), then ``-r``
    (raw strings); these apply to every run. Each ``--grid`` file adds its parameter sets
    (:func:`load_grid`); a parameter given both ways is an error. ``--quick`` is applied by
    :func:`run_notebooks`. Raises FileNotFoundError, ValueError or TypeError naming the argument
    (argparse's own errors exit with status 2).
    """
    args = _run_parser(prog).parse_args(list(argv))
    notebooks = _resolve_notebooks(args.notebooks)
    base: dict[str, Any] = {}
    for snippet in args.parameters_yaml:
        base.update(_parse_yaml_snippet(snippet))
    for pname, value in args.parameter:
        base[pname] = parse_value(value)
    for pname, value in args.parameter_raw:
        base[pname] = value
    base = _check_parameters(base, "-p/-r/-y")
    if not args.grid:
        return notebooks, [base], args
    sets: list[dict[str, Any]] = []
    for g in args.grid:
        sets.extend(load_grid(g))
    for s in sets:
        clash = sorted(set(s) & set(base))
        if clash:
            raise ValueError(
                f"parameter(s) {', '.join(clash)} given both by -p/-r/-y and by --grid; "
                "give each parameter in one place"
            )
    return notebooks, [{**base, **s} for s in sets], args


def _cmd_run(argv: Sequence[str], prog: str) -> int:
    parser = _run_parser(prog)
    try:
        notebooks, sets, args = parse_run_args(argv, prog)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        parser.error(str(exc))

    n = len(notebooks) * len(sets)
    print(f"otkit runs: {len(notebooks)} notebook(s) x {len(sets)} parameter set(s) = {n} run(s) "
          f"into {args.runs_dir}/", file=sys.stderr)
    records = run_notebooks(
        notebooks, sets, runs_dir=args.runs_dir, quick=args.quick, timeout=args.timeout,
        name=args.name, kernel_name=args.kernel, progress=not args.no_progress,
    )
    print(format_table(records))
    print(f"\nindex: {_display_path(Path(args.runs_dir).resolve() / INDEX_FILE)}")
    failed = [r for r in records if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} of {len(records)} run(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {_display_path(r.path)}: {r.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_summary(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        records = summarize(args.runs_dir)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not records:
        print(f"no runs under {args.runs_dir}/")
    else:
        print(format_table(records, max_width=None if args.wide else 60))
    if not args.no_html:
        out = write_index(args.runs_dir, records)
        print(f"\nindex: {_display_path(out)}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = _PROG) -> int:
    """Command-line entry: ``[run] NOTEBOOK... [options]`` or ``summary [--runs-dir DIR]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: {prog} [run] NOTEBOOK... [-p NAME VALUE]... [-y YAML] [-g GRID] [--quick] [--runs-dir DIR]\n"
            f"       {prog} summary [--runs-dir DIR]\n\n"
            "Run notebooks with papermill into runs/<timestamp>-<notebook>[-<hash>]/, or summarize the runs.\n"
            f"`{prog} run --help` and `{prog} summary --help` give the options."
        )
        return 0 if argv else 2
    if argv[0] == "summary":
        parser = _summary_parser(prog)
        return _cmd_summary(parser.parse_args(argv[1:]), parser)
    if argv[0] == "run":
        argv = argv[1:]
    return _cmd_run(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
