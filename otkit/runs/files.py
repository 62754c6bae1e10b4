"""Run folders' files: their names, and atomic writes (temp file + os.replace)."""


import datetime as _dt
import json
import os
import re
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


def _atomic_write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _now() -> _dt.datetime:
    return _dt.datetime.now().astimezone()
