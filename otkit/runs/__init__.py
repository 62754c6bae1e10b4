"""Batch runs of notebooks with papermill, their metrics, and a summary of every run.

Three pieces, usable from Python and from the command line:

* :func:`log_metrics` is what a notebook calls to record its headline figures. Run by
  papermill (through this module), the values go to the run's ``metrics.json`` (the path is in
  the environment variable ``OTKIT_METRICS_PATH``); run by hand, they go to
  ``runs/interactive/<notebook or "session">/<YYYYmmdd-HHMMSS>-<pid>/metrics.json`` under the
  repository root (found by looking upward from the current directory for the
  ``pyproject.toml`` of otkit; else the current directory): a fresh file per kernel session,
  and interactive runs never write into tracked files. JSON files are standard JSON:
  non-finite floats are written as the strings ``"inf"``, ``"-inf"``, ``"nan"``. It returns
  the merged metrics as a dict that a notebook shows as a compact two-column table.
* :func:`run_notebooks` executes every notebook with every parameter set, one run directory
  each: ``<runs_dir>/<YYYYmmdd-HHMMSS>-<notebook stem>[-<param hash or name>]/`` holding the
  executed notebook, ``params.json``, ``metrics.json``, ``status.json`` and ``log.txt``. JSON
  files are written atomically, ``log.txt`` grows as the cells run (``tail -f`` it), a
  directory is never reused, and a failing notebook is recorded (``status.json`` says
  ``"failed"`` with the error) while the batch goes on. ``status.json`` names the runner
  (PID, host) and carries a heartbeat, so a run whose runner was killed reads back as
  ``"stale"``; ``resume=True`` (``--resume``) skips runs that already finished ok.
* :func:`summarize` reads a runs directory back; :func:`write_index` renders it to a
  self-contained ``index.html`` (the runner refreshes it after every batch).
* :func:`write_gallery` renders the latest successful run of each notebook to static HTML
  (nbconvert, no widget state) under ``runs/gallery/``, with an index page.

Command line (``python -m otkit.runs`` or ``python -m otkit run``)::

    python -m otkit.runs notebooks/01_x.ipynb -p n 500 -p epsilon 0.05 --quick
    python -m otkit.runs notebooks/*.ipynb --grid grid.yaml --runs-dir runs --resume
    python -m otkit.runs summary --runs-dir runs
    python -m otkit.runs gallery --runs-dir runs          # -> runs/gallery/index.html

Modules: :mod:`~otkit.runs.metrics` (the notebook helper), :mod:`~otkit.runs.params`
(parameter parsing and grids), :mod:`~otkit.runs.execute` (papermill runs),
:mod:`~otkit.runs.records` (reading runs back, the table and the HTML index),
:mod:`~otkit.runs.cli` (the command line), :mod:`~otkit.runs.files` (file names, atomic writes),
:mod:`~otkit.runs.tables` (text tables and the metrics table), :mod:`~otkit.runs.gallery`
(executed copies as HTML), :mod:`~otkit.runs.app` (notebooks as Voilà apps).

Nothing here imports Jupyter or papermill at import time: notebooks can call
:func:`log_metrics` with only otkit installed; papermill is imported when a run starts.
"""

from .app import in_voila, skip_studies_in_voila
from .cli import main, parse_run_args
from .execute import run_notebook, run_notebooks
from .files import KERNEL_NAME, METRICS_ENV
from .gallery import write_gallery
from .metrics import (
    LoggedMetrics,
    current_metrics,
    default_metrics_path,
    log_metrics,
    reset_metrics,
)
from .params import expand_grid, load_grid, parse_value
from .records import RunRecord, format_table, summarize, write_index

__all__ = [
    "RunRecord",
    "LoggedMetrics",
    "log_metrics",
    "current_metrics",
    "reset_metrics",
    "default_metrics_path",
    "run_notebook",
    "run_notebooks",
    "summarize",
    "write_index",
    "write_gallery",
    "format_table",
    "parse_value",
    "parse_run_args",
    "load_grid",
    "expand_grid",
    "main",
    "in_voila",
    "skip_studies_in_voila",
    "METRICS_ENV",
    "KERNEL_NAME",
]
