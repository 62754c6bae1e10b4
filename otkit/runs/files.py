"""Run folders' files: their names, and atomic writes (temp file + os.replace)."""


import datetime as _dt
import json
import math
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

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

#: A running run's runner rewrites ``heartbeat`` in its ``status.json`` this often (seconds).
HEARTBEAT_S = 30.0
#: A ``running`` run whose runner cannot be checked by PID (another host, or not POSIX) is
#: ``stale`` once its heartbeat is older than this (seconds).
STALE_AFTER_S = 300.0

#: How non-finite floats are spelled in the JSON files (standard JSON has no inf/nan).
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

_UNKNOWN_PARAMETER = re.compile(r"Passed unknown parameter:\s*(\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")



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


def _json_safe(data: Any) -> Any:
    """``data`` with every non-finite float replaced by ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if isinstance(data, float) and not math.isfinite(data):
        return "nan" if math.isnan(data) else ("inf" if data > 0 else "-inf")
    if isinstance(data, dict):
        return {k: _json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(v) for v in data]
    return data


def _from_json_safe(data: Any) -> Any:
    """Undo :func:`_json_safe`: the strings ``"inf"``, ``"-inf"``, ``"nan"`` become floats."""
    if isinstance(data, str):
        return NONFINITE.get(data, data)
    if isinstance(data, dict):
        return {k: _from_json_safe(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_from_json_safe(v) for v in data]
    return data


def _dumps(data: Any, **kwargs: Any) -> str:
    """Standard JSON (no ``Infinity``/``NaN`` tokens): non-finite floats become strings."""
    return json.dumps(_json_safe(data), allow_nan=False, **kwargs)


def _atomic_write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, _dumps(data, indent=2, sort_keys=False) + "\n")


def _read_json(path: Path, nonfinite: bool = False) -> Any:
    """Read a JSON file; ``nonfinite=True`` turns ``"inf"``/``"-inf"``/``"nan"`` back into floats.

    Files written by older versions with ``Infinity``/``NaN`` tokens are read as well.
    """
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return _from_json_safe(data) if nonfinite else data


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None.

    Recorded with the PID so that a PID reused by a later process is not mistaken for the runner.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _runner_info() -> dict[str, Any]:
    """Who runs a run: recorded in ``status.json`` so a killed runner can be told apart."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "process_start": _process_start(pid)}


def _pid_alive(pid: int) -> bool | None:
    """Whether a process ``pid`` exists on this host (None: cannot tell on this platform)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return None
    return True


def _now() -> _dt.datetime:
    return _dt.datetime.now().astimezone()
