"""Tests of otkit.runs' run lifecycle: stale runs, --resume, a log that grows while the run
goes, standard-JSON metrics (inf/nan), and interactive metrics kept per kernel session.

The papermill tests (marker ``notebooks``) run the fixtures in tests/fixtures/runner/:
``waiting.ipynb`` prints, then waits for a file (so a test can look at a live run, or kill
its runner); ``plain.ipynb`` and ``failing.ipynb`` as in test_runs.py.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from otkit import runs
from otkit.runs import (
    METRICS_ENV,
    format_table,
    log_metrics,
    reset_metrics,
    run_notebook,
    run_notebooks,
    summarize,
)
from otkit.runs import files as run_files
from otkit.runs.files import STALE_AFTER_S, _now, _process_start
from otkit.runs.metrics import _session_id

NB_DIR = (Path(__file__).parents[1] / "fixtures" / "runner").resolve()
PLAIN_NB = NB_DIR / "plain.ipynb"
FAILING_NB = NB_DIR / "failing.ipynb"
WAITING_NB = NB_DIR / "waiting.ipynb"


def _json(path: Path):
    return json.loads(path.read_text())


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_run(root: Path, name: str, **status) -> Path:
    d = root / name
    d.mkdir(parents=True)
    base = {
        "status": "running", "notebook": str(PLAIN_NB), "parameters": {},
        "started": _now().isoformat(timespec="seconds"), "finished": None, "duration_s": None,
        "error": None, "warnings": [],
    }
    (d / "status.json").write_text(json.dumps({**base, **status}))
    return d


# ----------------------------------------------------------------------------------------------
# 1. a killed runner: its run reads back as "stale", not "running" forever
# ----------------------------------------------------------------------------------------------


def test_running_status_is_checked_against_the_runner(tmp_path, capsys):
    root = tmp_path / "runs"
    host = socket.gethostname()
    me = os.getpid()
    now = _now()
    old = (now - dt.timedelta(seconds=2 * STALE_AFTER_S)).isoformat(timespec="seconds")
    dead = _dead_pid()
    _fake_run(root, "a-dead", runner={"pid": dead, "host": host, "process_start": None}, heartbeat=now.isoformat())
    _fake_run(root, "b-alive", runner={"pid": me, "host": host, "process_start": _process_start(me)},
              heartbeat=old)  # alive on this host: the PID decides, not the heartbeat
    _fake_run(root, "c-remote-old", runner={"pid": 1, "host": "elsewhere.invalid"}, heartbeat=old)
    _fake_run(root, "d-remote-fresh", runner={"pid": 1, "host": "elsewhere.invalid"}, heartbeat=now.isoformat())
    _fake_run(root, "e-legacy")  # recorded before runners were kept: cannot tell
    _fake_run(root, "f-ok", status="ok", duration_s=1.0, runner={"pid": dead, "host": host})
    if _process_start(me) is not None:  # Linux: a reused PID is not mistaken for the runner
        _fake_run(root, "g-reused", runner={"pid": me, "host": host, "process_start": _process_start(me) + 1})

    found = {r.name: r for r in summarize(root)}
    assert found["a-dead"].status == "stale" and f"pid {dead}" in found["a-dead"].error
    assert found["a-dead"].pid == dead and found["a-dead"].host == host
    assert found["b-alive"].status == "running" and found["b-alive"].error is None
    assert found["c-remote-old"].status == "stale" and "heartbeat" in found["c-remote-old"].error
    assert found["d-remote-fresh"].status == "running"
    assert found["e-legacy"].status == "running"
    assert found["f-ok"].status == "ok"
    if "g-reused" in found:
        assert found["g-reused"].status == "stale"
    assert _json(root / "a-dead" / "status.json")["status"] == "running"  # reading changes nothing

    assert runs.main(["summary", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("a-dead"))
    assert "stale" in line
    assert 'class="stale"' in (root / "index.html").read_text()


@pytest.mark.notebooks
def test_killed_runner_reads_back_as_stale(tmp_path):
    runs_dir = tmp_path / "runs"
    pid_file = tmp_path / "kernel.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "otkit.runs", str(WAITING_NB), "-p", "go_file", str(tmp_path / "never"),
         "-p", "pid_file", str(pid_file), "-p", "wait_s", "120", "--runs-dir", str(runs_dir), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        run_dir = _wait_for(lambda: runs_dir.is_dir() and next(runs_dir.glob("*-waiting-*"), None),
                            what="the run directory")
        _wait_for(lambda: pid_file.is_file() and pid_file.read_text().strip()
                  and "waiting for the go file" in _read(run_dir / "log.txt"), what="the kernel")
        [live] = summarize(runs_dir)
        assert live.status == "running" and live.pid == proc.pid and live.host == socket.gethostname()
    finally:
        proc.kill()  # SIGKILL: no chance to write a final status
        proc.wait()
        if pid_file.is_file() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the orphaned kernel
            except ProcessLookupError:
                pass
    status = _json(run_dir / "status.json")
    assert status["status"] == "running" and status["runner"]["pid"] == proc.pid
    [record] = summarize(runs_dir)
    assert record.status == "stale" and f"pid {proc.pid}" in record.error
    assert "waiting for the go file" in (run_dir / "log.txt").read_text()  # the log up to the kill


# ----------------------------------------------------------------------------------------------
# 2. --resume: skip what finished ok (same parameters, same notebook content), rerun the rest
# ----------------------------------------------------------------------------------------------


def _dirs(runs_dir: Path) -> set[str]:
    return {p.name for p in runs_dir.iterdir() if p.is_dir()}


@pytest.mark.notebooks
def test_resume_skips_finished_runs_only(tmp_path, capsys):
    nb = tmp_path / "plain.ipynb"
    shutil.copy(PLAIN_NB, nb)
    runs_dir = tmp_path / "runs"
    first = run_notebooks([nb], [{"seed": 1}, {"seed": 2}], runs_dir=runs_dir, progress=False)
    [failed] = run_notebooks(FAILING_NB, {"fail": True}, runs_dir=runs_dir, progress=False)
    assert [r.status for r in first] == ["ok", "ok"] and failed.status == "failed"
    assert first[0].notebook_sha256 == _json(first[0].path / "status.json")["notebook_sha256"]

    # seed 2's runner "was killed": status.json still says running and its PID is gone.
    path = first[1].path / "status.json"
    status = _json(path)
    status.update(status="running", finished=None, runner={**status["runner"], "pid": _dead_pid()})
    path.write_text(json.dumps(status))
    assert {r.name: r.status for r in summarize(runs_dir)}[first[1].name] == "stale"
    kept = {p.name: p.read_bytes() for p in first[0].path.iterdir()}
    before = _dirs(runs_dir)
    capsys.readouterr()

    grid = tmp_path / "grid.yaml"
    grid.write_text("seed: [1, 2, 3]\n")
    argv = [str(nb), "--grid", str(grid), "--resume", "--runs-dir", str(runs_dir), "--no-progress"]
    assert runs.main(["run", *argv]) == 0
    err = capsys.readouterr().err
    skips = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(skips) == 1 and '{"seed": 1}' in skips[0] and first[0].name in skips[0], err
    new = _dirs(runs_dir) - before
    assert len(new) == 2  # seed 2 (stale) again, seed 3 (new); seed 1 skipped
    assert {_json(runs_dir / d / "params.json")["seed"] for d in new} == {2, 3}
    assert {p.name: p.read_bytes() for p in first[0].path.iterdir()} == kept  # never overwritten
    assert before <= _dirs(runs_dir)

    # A failed run is run again.
    [again] = run_notebooks(FAILING_NB, {"fail": True}, runs_dir=runs_dir, progress=False, resume=True)
    assert again.status == "failed" and again.path != failed.path and not again.resumed

    # Same parameters, other notebook content: run again; then that run is the one skipped.
    nb.write_text(nb.read_text().replace("print('seed', seed)", "print('seed:', seed)"))
    [changed] = run_notebooks([nb], {"seed": 1}, runs_dir=runs_dir, progress=False, resume=True)
    assert changed.status == "ok" and not changed.resumed and changed.path != first[0].path
    [skipped] = run_notebooks([nb], {"seed": 1}, runs_dir=runs_dir, progress=False, resume=True)
    assert skipped.resumed and skipped.path == changed.path
    assert f"already ok in {changed.name}" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# 3. log.txt grows while the run goes (tail -f), and status.json names a live runner
# ----------------------------------------------------------------------------------------------


@pytest.mark.notebooks
def test_log_grows_while_the_run_goes(tmp_path):
    run_dir = tmp_path / "runs" / "live"
    go = tmp_path / "go"
    seen: dict = {}

    def watch():  # another thread reads the run while the main thread executes it
        try:
            seen["log"] = _wait_for(
                lambda: "waiting for the go file" in (text := _read(run_dir / "log.txt")) and text,
                what="the first cell's output in log.txt",
            )
            seen["status"] = _json(run_dir / "status.json")
            seen["records"] = summarize(run_dir.parent)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            seen["error"] = exc
        finally:
            go.touch()  # let the notebook finish

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        record = run_notebook(WAITING_NB, {"go_file": str(go), "wait_s": 120}, run_dir=run_dir)
    finally:
        go.touch()
        watcher.join()
    assert "error" not in seen, seen.get("error")
    assert record.status == "ok", record.error

    live = seen["log"]
    assert "released" not in live  # read before the last cell finished
    assert "code cell 3/4" in live  # a line per code cell (the injected parameters cell included)
    status = seen["status"]
    assert status["status"] == "running" and status["heartbeat"]
    assert status["runner"]["pid"] == os.getpid() and status["runner"]["host"] == socket.gethostname()
    assert [r.status for r in seen["records"]] == ["running"]  # a live runner is not stale

    final = (run_dir / "log.txt").read_text()
    assert final.startswith(live.splitlines()[0]) and "released" in final and "status: ok" in final
    assert "code cell 4/4" in final
    assert _json(run_dir / "status.json")["status"] == "ok"


def test_heartbeat_is_refreshed(tmp_path, monkeypatch):
    from otkit.runs.execute import _Heartbeat

    monkeypatch.setattr(run_files, "HEARTBEAT_S", 0.05)
    path = tmp_path / "status.json"
    status = {"status": "running", "heartbeat": None}
    with _Heartbeat(path, status) as beat:
        first = _json(path)["heartbeat"]
        assert first
        _wait_for(lambda: beat.thread.is_alive(), what="the heartbeat thread")
        time.sleep(0.2)
        beat.write(status="ok")
    assert not beat.thread.is_alive() and _json(path)["status"] == "ok"


# ----------------------------------------------------------------------------------------------
# 4. metrics (and every JSON file) are standard JSON: inf/-inf/nan written as strings
# ----------------------------------------------------------------------------------------------


def _strict_loads(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_nonfinite_metrics_are_standard_json(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run_dir = _fake_run(root, "r1", status="ok", duration_s=1.0)
    monkeypatch.setenv(METRICS_ENV, str(run_dir / "metrics.json"))
    reset_metrics()
    try:
        merged = log_metrics(w2=float("inf"), gap=-math.inf, loss=float("nan"), curve=[1.0, math.nan],
                             t=torch.tensor(float("inf")), fine=1.5)
        merged = log_metrics(extra=2)  # merging reads the stored values back as floats
    finally:
        reset_metrics()
    text = (run_dir / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert _strict_loads(text) == {"w2": "inf", "gap": "-inf", "loss": "nan", "curve": [1.0, "nan"],
                                   "t": "inf", "fine": 1.5, "extra": 2}
    assert merged["w2"] == math.inf and merged["gap"] == -math.inf and math.isnan(merged["loss"])

    [record] = summarize(root)
    m = record.metrics
    assert m["w2"] == math.inf and m["t"] == math.inf and m["gap"] == -math.inf and m["fine"] == 1.5
    assert math.isnan(m["loss"]) and m["curve"][0] == 1.0 and math.isnan(m["curve"][1])
    table = format_table([record], max_width=None)
    assert "w2=inf" in table and "gap=-inf" in table and "loss=nan" in table
    page = runs.write_index(root).read_text()
    assert ">inf<" in page and ">nan<" in page

    # Other files too (a parameter -p eps inf is a float), and old files with the tokens still read.
    run_files._atomic_write_json(run_dir / "params.json", {"eps": math.inf})
    assert _strict_loads((run_dir / "params.json").read_text()) == {"eps": "inf"}
    assert summarize(root)[0].parameters == {"eps": math.inf}
    (run_dir / "metrics.json").write_text('{"w2": Infinity, "loss": NaN}')
    assert summarize(root)[0].metrics["w2"] == math.inf


# ----------------------------------------------------------------------------------------------
# 5. interactive metrics: one file per kernel session, keyed by notebook when known
# ----------------------------------------------------------------------------------------------


def test_interactive_metrics_per_session_and_notebook(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "otkit"\nversion = "0"\n')
    monkeypatch.chdir(repo / "notebooks")
    for var in (METRICS_ENV, "JPY_SESSION_NAME", "SCRIPT_NAME"):
        monkeypatch.delenv(var, raising=False)
    interactive = repo / "runs" / "interactive"
    reset_metrics()
    try:
        # Two notebooks, as two kernels of one server would see them: JupyterLab names the
        # notebook in JPY_SESSION_NAME, Voilà in SCRIPT_NAME. Same-named keys do not collide.
        monkeypatch.setenv("JPY_SESSION_NAME", str(repo / "notebooks" / "a.ipynb"))
        log_metrics(w2=1.0)
        monkeypatch.delenv("JPY_SESSION_NAME")
        monkeypatch.setenv("SCRIPT_NAME", "/voila/render/notebooks/b.ipynb")
        log_metrics(w2=2.0)
    finally:
        reset_metrics()
    session = _session_id()
    assert _json(interactive / "a" / session / "metrics.json") == {"w2": 1.0}
    assert _json(interactive / "b" / session / "metrics.json") == {"w2": 2.0}

    # A new kernel session of notebook a (another process) starts a fresh file.
    env = {k: v for k, v in os.environ.items() if k not in (METRICS_ENV, "SCRIPT_NAME")}
    env.update(JPY_SESSION_NAME=str(repo / "notebooks" / "a.ipynb"), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", "from otkit.runs import log_metrics; log_metrics(n_iter=3)"],
                   cwd=repo / "notebooks", env=env, check=True, timeout=120)
    files = sorted((interactive / "a").glob("*/metrics.json"))
    assert len(files) == 2
    assert sorted(json.dumps(_json(f), sort_keys=True) for f in files) == ['{"n_iter": 3}', '{"w2": 1.0}']
