"""Running notebooks with papermill, one atomic, never-reused folder per run."""


import contextlib
import dataclasses
import datetime as _dt
import hashlib
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import traceback as _traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import files as _files
from .files import (
    _ANSI,
    _UNKNOWN_PARAMETER,
    KERNEL_NAME,
    LOG_FILE,
    METRICS_ENV,
    METRICS_FILE,
    PARAMS_FILE,
    STATUS_FILE,
    _atomic_write_json,
    _dumps,
    _now,
    _read_json,
    _runner_info,
)
from .params import _check_parameters
from .records import RunRecord, summarize, write_index

#: Name under which the runner's papermill engine (nbclient plus per-cell log lines) is registered.
_ENGINE_NAME = "otkit"


def _param_hash(params: Mapping[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:8]


def _param_key(params: Mapping[str, Any]) -> str:
    """Parameters as canonical JSON (as params.json stores them): what ``resume`` compares."""
    return _dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)


def _notebook_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def _register_engine() -> str:
    """Register (once) papermill's nbclient engine plus a line in the log as each cell starts.

    The line goes to the run log (papermill's ``stdout_file``), so ``tail -f log.txt`` shows
    which cell is running even while it prints nothing. Returns the engine's name.
    """
    from papermill.engines import NBClientEngine, papermill_engines

    if _ENGINE_NAME in getattr(papermill_engines, "_engines", {}):
        return _ENGINE_NAME

    class _LoggingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            log = kwargs.get("stdout_file")
            if log is not None:
                cells = nb_man.nb.cells
                code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
                numbers = {i: k + 1 for k, i in enumerate(code)}
                original = nb_man.cell_start

                def cell_start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                    if cell_index in numbers:
                        source = "".join(cell.get("source", "")).strip().splitlines()
                        first = source[0][:70] if source else ""
                        try:
                            log.write(f"\n--- [{time.strftime('%H:%M:%S')}] code cell "
                                      f"{numbers[cell_index]}/{len(code)}: {first}\n")
                            log.flush()
                        except (OSError, ValueError):  # pragma: no cover - logging never breaks a run
                            pass
                    return original(cell, cell_index, **kw)

                nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(_ENGINE_NAME, _LoggingEngine)
    return _ENGINE_NAME


class _Heartbeat:
    """Rewrites ``status.json`` with a fresh ``heartbeat`` every ``HEARTBEAT_S`` while a run goes.

    Summaries on another host (or where PIDs cannot be checked) use it to tell a killed runner
    from a live one. :meth:`write` is the one way the status file is written while it runs.
    """

    def __init__(self, path: Path, status: dict[str, Any]) -> None:
        self.path = path
        self.status = status
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="otkit-runs-heartbeat", daemon=True)

    def write(self, **updates: Any) -> None:
        with self.lock:
            self.status.update(updates)
            self.status["heartbeat"] = _now().isoformat(timespec="seconds")
            _atomic_write_json(self.path, self.status)

    def _loop(self) -> None:
        while not self.stop.wait(_files.HEARTBEAT_S):
            try:
                self.write()
            except OSError:  # pragma: no cover - a missed beat is harmless
                pass

    def __enter__(self) -> "_Heartbeat":
        self.write()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


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
        "notebook_sha256": _notebook_sha256(nb_path),
        "parameters": params,
        "kernel": kernel_name,
        "cwd": str(nb_path.parent),
        "started": started.isoformat(timespec="seconds"),
        "finished": None,
        "duration_s": None,
        "error": None,
        "warnings": [],
        "runner": _runner_info(),
        "heartbeat": None,
    }
    _atomic_write_json(directory / PARAMS_FILE, params)
    heartbeat = _Heartbeat(directory / STATUS_FILE, status)

    nb_tmp = directory / f".{nb_path.stem}.partial.ipynb"
    error: BaseException | None = None
    unknown: list[str] = []
    t0 = time.perf_counter()
    # The log is written in place (not atomically) and flushed as the kernel prints, so that
    # `tail -f log.txt` follows the run; a killed run keeps the log up to the kill.
    with heartbeat, open(directory / LOG_FILE, "w", encoding="utf-8") as log:
        log.write(f"notebook:   {nb_path}\n")
        log.write(f"parameters: {_dumps(params)}\n")
        log.write(f"kernel:     {kernel_name}\n")
        log.write(f"cwd:        {nb_path.parent}\n")
        log.write(f"{METRICS_ENV}={metrics_path}\n")
        log.write(f"started:    {status['started']}\n")
        log.write(f"runner:     pid {status['runner']['pid']} on {status['runner']['host']}\n\n")
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
            engine_kwargs: dict[str, Any] = {"store_widget_state": False, "engine_name": _register_engine()}
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

        if nb_tmp.exists():
            os.replace(nb_tmp, executed_path)
        metrics: Any = {}
        if metrics_path.is_file():
            try:
                metrics = _read_json(metrics_path, nonfinite=True)
            except (OSError, ValueError):
                metrics = {}
        else:
            _atomic_write_json(metrics_path, {})
        metrics = metrics if isinstance(metrics, dict) else {}

        heartbeat.stop.set()
        final: dict[str, Any] = {
            "status": state,
            "finished": _now().isoformat(timespec="seconds"),
            "duration_s": round(duration, 3),
            "error": short,
            "warnings": warnings_list,
        }
        if tb and state == "failed":
            final["traceback"] = tb
        heartbeat.write(**final)
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
        host=status["runner"]["host"],
        pid=status["runner"]["pid"],
        heartbeat=status["heartbeat"],
        notebook_sha256=status["notebook_sha256"],
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
    resume: bool = False,
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
        resume: skip a run when ``runs_dir`` already holds one that finished ``ok`` with the same
            parameters (``quick`` included) and the same notebook content (SHA-256 of the
            ``.ipynb``); a line on stderr names each skipped run. Failed, interrupted and stale
            runs are run again, in a new directory (runs are never overwritten).

    Returns:
        One :class:`RunRecord` per run, in order (notebook-major). Failed runs have
        ``status="failed"``; the others are complete regardless. A skipped run (``resume``)
        is the earlier record with ``resumed=True``. ``<runs_dir>/index.html`` is refreshed
        at the end.
    """
    nb_paths = _resolve_notebooks(notebooks)
    sets = _resolve_parameter_sets(parameter_sets)
    if quick:
        sets = [{**s, "quick": True} for s in sets]
    _import_papermill()
    root = Path(runs_dir).resolve()
    jobs = [(nb, s) for nb in nb_paths for s in sets]

    from tqdm.auto import tqdm

    done: dict[tuple[str, str], RunRecord] = {}
    if resume and root.is_dir():
        for earlier in summarize(root):
            if earlier.status == "ok" and earlier.notebook_sha256:
                done.setdefault((earlier.notebook_sha256, _param_key(earlier.parameters)), earlier)

    records: list[RunRecord] = []
    bar = tqdm(total=len(jobs), unit="run", desc="otkit runs", disable=not progress, file=sys.stderr)
    try:
        for nb, params in jobs:
            key = (_notebook_sha256(nb), _param_key(params)) if resume else None
            if key is not None and key in done:
                earlier = done[key]
                message = f"skipped {nb.name} {_dumps(params)}: already ok in {earlier.name}"
                if progress:
                    bar.write(message, file=sys.stderr)
                else:
                    print(message, file=sys.stderr)
                records.append(dataclasses.replace(earlier, resumed=True))
                bar.update(1)
                continue
            if name:
                suffix = name if len(sets) == 1 else f"{name}-{_param_hash(params)}"
            else:
                suffix = _param_hash(params) if params else None
            started = _now()
            directory = _make_run_dir(root, nb, suffix, started)
            bar.set_postfix_str(directory.name, refresh=True)
            record = _execute(nb, params, directory, started, timeout, kernel_name)
            records.append(record)
            if key is not None and record.status == "ok" and record.notebook_sha256 == key[0]:
                done.setdefault(key, record)
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
