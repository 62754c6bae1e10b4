"""The metrics helper notebooks call: :func:`log_metrics` (see :mod:`otkit.runs`)."""


import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .files import (
    INTERACTIVE_DIR,
    MAX_METRIC_ELEMENTS,
    METRICS_ENV,
    METRICS_FILE,
    _atomic_write_json,
    _now,
    _read_json,
)
from .tables import metrics_html, metrics_text

_METRICS: dict[str, Any] = {}
#: (pid, session id) of this process's interactive session; a forked child starts its own.
_SESSION: tuple[int, str] | None = None


class LoggedMetrics(dict):
    """What :func:`log_metrics` returns: the merged metrics, a plain ``dict`` shown as a table.

    As a notebook cell's last value it displays as a compact two-column table (HTML in
    Jupyter, Voilà and nbconvert; text in a terminal), not as a raw dict. ``path`` is the
    metrics file it was written to.
    """

    path: Path | None = None

    def __repr__(self) -> str:
        return metrics_text(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("LoggedMetrics(...)" if cycle else metrics_text(self))

    def _repr_html_(self) -> str:
        return metrics_html(self, caption=f"metrics ({len(self)})")


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


def _notebook_path() -> str | None:
    """The running notebook's path when the front end tells the kernel, else None.

    Jupyter Server (JupyterLab, Notebook 7) sets ``JPY_SESSION_NAME`` in the kernel's
    environment; VS Code defines ``__vsc_ipynb_file__``; Voilà sets ``SCRIPT_NAME`` to the
    request path (``/voila/render/<notebook>.ipynb``).
    """
    candidate = os.environ.get("JPY_SESSION_NAME")
    if not candidate and "IPython" in sys.modules:
        try:
            ip = sys.modules["IPython"].get_ipython()
            candidate = ip.user_ns.get("__vsc_ipynb_file__") if ip is not None else None
        except Exception:
            candidate = None
    if not candidate:
        script = os.environ.get("SCRIPT_NAME", "")
        if script.endswith(".ipynb"):
            candidate = script
    return str(candidate) if candidate else None


def _session_id() -> str:
    """This kernel session: ``<YYYYmmdd-HHMMSS of the first metric>-<pid>``, fixed per process.

    Every kernel is its own process, so a restarted kernel, or a second notebook served by the
    same Voilà or Jupyter server, gets a fresh metrics file.
    """
    global _SESSION
    pid = os.getpid()
    if _SESSION is None or _SESSION[0] != pid:
        _SESSION = (pid, f"{_now().strftime('%Y%m%d-%H%M%S')}-{pid}")
    return _SESSION[1]


def _session_name() -> str:
    """The running notebook's stem when the front end tells us (see :func:`_notebook_path`), else ``"session"``."""
    candidate = _notebook_path()
    if not candidate:
        return "session"
    stem = Path(str(candidate)).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem or "session"


def default_metrics_path() -> Path:
    """Where :func:`log_metrics` writes: ``$OTKIT_METRICS_PATH`` when set, else the default.

    The default is ``runs/interactive/<notebook or "session">/<session>/metrics.json`` under
    the repository root (found by looking upward from the current directory for otkit's
    ``pyproject.toml``), else under the current directory. ``<session>`` is
    ``<YYYYmmdd-HHMMSS>-<pid>`` of this kernel process (:func:`_session_id`), so each kernel
    session starts a fresh file and two notebooks never share one. ``runs/`` is git-ignored.
    """
    env = os.environ.get(METRICS_ENV)
    if env:
        return Path(env)
    cwd = Path.cwd()
    base = _find_repo_root(cwd) or cwd
    return base / "runs" / INTERACTIVE_DIR / _session_name() / _session_id() / METRICS_FILE


def log_metrics(values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> LoggedMetrics:
    """Record a notebook's headline metrics, the same way by hand and under papermill.

    Values are numbers, strings, bools, None, or small (nested) lists and dicts of them; torch
    tensors and numpy arrays or scalars are converted with ``.item()`` / ``.tolist()``. They
    are merged (new values win) into the JSON file at ``$OTKIT_METRICS_PATH`` when that is set
    (the runner sets it to the run's ``metrics.json``), else into
    ``runs/interactive/<notebook or "session">/<session>/metrics.json`` under the repository
    root, one per kernel session (see :func:`default_metrics_path`). The file is written
    atomically, as standard JSON: non-finite floats are stored as the strings ``"inf"``,
    ``"-inf"`` and ``"nan"`` (read back as floats by :func:`~otkit.runs.summarize`).

    Args:
        values: an optional mapping of metrics (for names that are not identifiers).
        **kwargs: metrics by name.

    Returns:
        The merged content of the metrics file (non-finite values as floats), as a
        :class:`LoggedMetrics`: a ``dict`` that a notebook shows as a two-column table.

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
            existing = _read_json(path, nonfinite=True)
        except (OSError, ValueError):
            existing = None
        if isinstance(existing, dict):
            merged.update(existing)
    merged.update(converted)
    _atomic_write_json(path, merged)
    _METRICS.update(converted)
    shown = LoggedMetrics(merged)
    shown.path = path
    return shown


def current_metrics() -> dict[str, Any]:
    """A copy of the metrics logged by this process (kernel) so far."""
    return json.loads(json.dumps(_METRICS))


def reset_metrics() -> None:
    """Forget the metrics kept in memory (the files are left as they are)."""
    _METRICS.clear()
