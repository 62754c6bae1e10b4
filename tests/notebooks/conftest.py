"""Start the notebooks' quick runs as soon as the test session is collected.

The quick runs are the longest part of the suite and each is a separate process (its own
kernel, one torch thread). Started when their tests come up, they would run with the CPU to
themselves but after everything else. Started at collection, one at a time while the other
tests run (one core for them, one for the rest), then two at a time once the notebook tests
are reached, they overlap the rest of the suite instead of following it. While they run, this
process and what it starts keep one torch thread too: on 2 cores a second thread only waits at
OpenMP barriers behind the quick run (a 2 s test took 265 s that way).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TEST_NAME = "test_notebook_runs_and_reproduces_its_claims"

#: Quick runs at a time while other tests run, and once the notebook tests are reached
#: (CI has 2 cores).
BACKGROUND_RUNS = 1
PARALLEL_RUNS = 2

QUEUE_KEY = pytest.StashKey["NotebookQueue"]()


def quick_run_command(notebook: Path, runs_dir: Path) -> list[str]:
    """The batch-run command a user would type."""
    return [
        sys.executable, "-m", "otkit.runs", str(notebook), "-p", "show_widget", "False",
        "--quick", "--runs-dir", str(runs_dir),
    ]


class NotebookQueue:
    """Runs notebooks' quick runs in subprocesses, at most ``limit`` at a time, in order.

    ``runs[notebook]`` is ``(future, runs_dir)``; the future's result is the
    ``subprocess.CompletedProcess`` of the run (check=False: a failed run is reported from its
    records, with its error)."""

    def __init__(self, notebooks: list[Path], base: Path, limit: int) -> None:
        self.limit = limit
        self.runs = {nb: (Future(), base / nb.stem) for nb in notebooks}
        self._pending = deque(notebooks)
        self._running: dict[Path, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closed = False

    def widen(self, limit: int) -> None:
        with self._lock:
            self.limit = max(self.limit, limit)
        self._start_more()

    def _start_more(self) -> None:
        with self._lock:
            while not self._closed and self._pending and len(self._running) < self.limit:
                notebook = self._pending.popleft()
                future, runs_dir = self.runs[notebook]
                future.set_running_or_notify_cancel()
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                process = subprocess.Popen(
                    quick_run_command(notebook, runs_dir), cwd=ROOT, env=env, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                self._running[notebook] = process
                threading.Thread(target=self._wait, args=(notebook, process), daemon=True).start()

    def _wait(self, notebook: Path, process: subprocess.Popen) -> None:
        stdout, stderr = process.communicate()
        with self._lock:
            self._running.pop(notebook, None)
        self.runs[notebook][0].set_result(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
        self._start_more()

    def close(self) -> None:
        """Stop: cancel the runs not started, kill the ones running."""
        with self._lock:
            self._closed = True
            for notebook in self._pending:
                self.runs[notebook][0].cancel()
            self._pending.clear()
            running = list(self._running.values())
        for process in running:
            process.kill()


def pytest_collection_finish(session: pytest.Session) -> None:
    notebooks = [item.callspec.params["notebook"] for item in session.items
                 if getattr(item, "originalname", "") == TEST_NAME]
    if not notebooks or session.config.option.collectonly:
        return
    base = session.config._tmp_path_factory.mktemp("notebook-runs")
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    queue = NotebookQueue(notebooks, base, BACKGROUND_RUNS)
    session.config.stash[QUEUE_KEY] = queue
    queue._start_more()


def pytest_sessionfinish(session: pytest.Session) -> None:
    queue = session.config.stash.get(QUEUE_KEY, None)
    if queue is not None:
        queue.close()


@pytest.fixture(scope="session")
def notebook_runs(request) -> dict:
    """The selected notebooks' quick runs: ``{notebook: (future, runs_dir)}``, started at
    collection; from here on, PARALLEL_RUNS at a time."""
    queue = request.config.stash.get(QUEUE_KEY, None)
    if queue is None:
        return {}
    queue.widen(PARALLEL_RUNS)
    return queue.runs
