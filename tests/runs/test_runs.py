"""Tests of otkit.runs: batch notebook runs with papermill, metrics, summaries.

The papermill tests (marker ``notebooks``) execute the tiny notebooks in tests/fixtures/runner/
for real (kernel ``python3``): ``metrics.ipynb`` logs metrics computed from its parameters,
``failing.ipynb`` raises when ``fail=True``, ``plain.ipynb`` only prints (it imports nothing, so
its kernel is quick). The rest (parameter parsing, grids, log_metrics by hand) needs no kernel.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from otkit import runs
from otkit.runs import (
    METRICS_ENV,
    RunRecord,
    current_metrics,
    expand_grid,
    load_grid,
    log_metrics,
    parse_run_args,
    parse_value,
    reset_metrics,
    run_notebook,
    run_notebooks,
    summarize,
)
from otkit.runs.execute import _make_run_dir, _param_hash
from otkit.runs.files import MAX_METRIC_ELEMENTS, _now
from otkit.runs.metrics import _session_id

NB_DIR = (Path(__file__).parents[1] / "fixtures" / "runner").resolve()
METRICS_NB = NB_DIR / "metrics.ipynb"
FAILING_NB = NB_DIR / "failing.ipynb"
PLAIN_NB = NB_DIR / "plain.ipynb"
WAITING_NB = NB_DIR / "waiting.ipynb"
RUN_FILES = {"params.json", "metrics.json", "status.json", "log.txt"}


def _json(path: Path):
    return json.loads(path.read_text())


def _no_temp_files(run_dir: Path) -> bool:
    return not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------------------------
# The notebooks in tests/fixtures/runner are committed without outputs, with a `parameters` cell
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nb_path", [METRICS_NB, FAILING_NB, PLAIN_NB, WAITING_NB], ids=lambda p: p.name)
def test_runner_notebooks_are_clean(nb_path):
    nb = _json(nb_path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


# ----------------------------------------------------------------------------------------------
# (a) a grid of two parameter sets: two complete runs, and a summary listing both
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("grid") / "runs"
    sets = expand_grid({"n": [2, 5], "x": 0.5, "label": "grid"})
    records = run_notebooks([METRICS_NB], sets, runs_dir=runs_dir, progress=False)
    return runs_dir, records


@pytest.mark.notebooks
def test_grid_gives_two_complete_runs(grid_runs):
    runs_dir, records = grid_runs
    assert [r.status for r in records] == ["ok", "ok"], [r.error for r in records]
    assert len({r.path for r in records}) == 2
    for record, n in zip(records, [2, 5]):
        assert isinstance(record, RunRecord)
        d = record.path
        assert d.parent == runs_dir.resolve()
        assert d.name.endswith("-metrics-" + _param_hash({"n": n, "x": 0.5, "label": "grid"}))
        assert RUN_FILES | {"metrics.ipynb"} <= {p.name for p in d.iterdir()}
        assert _no_temp_files(d)
        params = {"n": n, "x": 0.5, "label": "grid"}
        assert record.parameters == params and _json(d / "params.json") == params

        metrics = _json(d / "metrics.json")
        assert metrics == record.metrics
        assert metrics["total"] == n * 0.5
        assert metrics["mean"] == pytest.approx((n - 1) / 2)  # a torch scalar, stored as a float
        assert metrics["squares"] == [i * i for i in range(n)]
        assert metrics["label"] == "grid" and metrics["steps"] == n
        assert metrics["cwd"] == str(NB_DIR)  # the kernel runs in the notebook's folder
        assert metrics["metrics_path"] == str(d / "metrics.json")

        status = _json(d / "status.json")
        assert status["status"] == "ok" and status["error"] is None and status["warnings"] == []
        assert status["duration_s"] == record.duration_s > 0
        assert f"total = {n * 0.5}" in (d / "log.txt").read_text()

        import nbformat  # papermill has imported it already

        executed = nbformat.read(d / "metrics.ipynb", as_version=4)
        assert executed.metadata.papermill.parameters == params
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
        assert "widgets" not in executed.metadata  # store_widget_state=False
        assert (d / "metrics.ipynb").stat().st_size < 50_000


@pytest.mark.notebooks
def test_summary_lists_both_runs(grid_runs, capsys):
    runs_dir, records = grid_runs
    found = summarize(runs_dir)
    assert [r.path for r in found] == [r.path for r in records]
    assert [r.metrics for r in found] == [r.metrics for r in records]

    page = (runs_dir / "index.html").read_text()  # written by the runner after the batch
    for r in records:
        assert r.name in page
        assert f'href="{r.name}/metrics.ipynb"' in page and f'href="{r.name}/log.txt"' in page

    from otkit.__main__ import main as otkit_main  # `python -m otkit summary`

    assert otkit_main(["summary", "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    for r in records:
        assert r.name in out
    assert "total=1" in out and "total=2.5" in out and "index.html" in out


# ----------------------------------------------------------------------------------------------
# (b) a failing notebook: the other run stays complete, the CLI exits non-zero naming it
# ----------------------------------------------------------------------------------------------


@pytest.mark.notebooks
def test_cli_failure_keeps_other_runs_and_exits_nonzero(tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "otkit.runs", str(FAILING_NB), str(PLAIN_NB),
         "-p", "fail", "True", "--runs-dir", str(runs_dir), "--no-progress"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 1, proc.stderr
    dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    assert len(dirs) == 2
    failed = next(d for d in dirs if "-failing-" in d.name)
    other = next(d for d in dirs if "-plain-" in d.name)
    assert failed.name in proc.stderr and "RuntimeError: failing on purpose" in proc.stderr

    status = _json(failed / "status.json")
    assert status["status"] == "failed"
    assert status["error"].startswith("RuntimeError: failing on purpose")
    assert "raise RuntimeError(message)" in status["traceback"]
    assert _json(failed / "metrics.json") == {"before_failure": 1}  # logged before the error
    assert (failed / "failing.ipynb").is_file() and "RuntimeError" in (failed / "log.txt").read_text()

    # The run after the failure is complete; the parameter it does not declare is a warning.
    assert RUN_FILES | {"plain.ipynb"} <= {p.name for p in other.iterdir()}
    assert _no_temp_files(other) and _no_temp_files(failed)
    status = _json(other / "status.json")
    assert status["status"] == "ok" and status["error"] is None
    assert len(status["warnings"]) == 1 and "'fail'" in status["warnings"][0]
    assert "unknown parameter 'fail'" in (other / "log.txt").read_text()
    assert _json(other / "params.json") == {"fail": True}
    assert _json(other / "metrics.json") == {}
    assert "seed 0" in (other / "log.txt").read_text()

    page = (runs_dir / "index.html").read_text()
    assert failed.name in page and other.name in page and "failing on purpose" in page
    assert [r.status for r in summarize(runs_dir)] == ["failed", "ok"]


# ----------------------------------------------------------------------------------------------
# (c) finished runs are never overwritten
# ----------------------------------------------------------------------------------------------


@pytest.mark.notebooks
def test_runs_are_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.delenv(METRICS_ENV, raising=False)
    runs_dir = tmp_path / "runs"
    first = run_notebooks(PLAIN_NB, {"seed": 1}, runs_dir=runs_dir, progress=False)
    second = run_notebooks(PLAIN_NB, {"seed": 1}, runs_dir=runs_dir, progress=False)
    assert [r.status for r in first + second] == ["ok", "ok"]
    assert first[0].path != second[0].path
    assert METRICS_ENV not in os.environ  # set around each run only, then restored
    assert len([p for p in runs_dir.iterdir() if p.is_dir()]) == 2

    before = {p.name: p.read_bytes() for p in first[0].path.iterdir()}
    with pytest.raises(FileExistsError, match="never overwritten"):
        run_notebook(PLAIN_NB, {"seed": 2}, run_dir=first[0].path)
    assert {p.name: p.read_bytes() for p in first[0].path.iterdir()} == before


def test_run_dir_names_are_unique(tmp_path):
    started = _now()
    made = [_make_run_dir(tmp_path, PLAIN_NB, "abc", started) for _ in range(3)]
    stamp = started.strftime("%Y%m%d-%H%M%S")
    assert [p.name for p in made] == [f"{stamp}-plain-abc", f"{stamp}-plain-abc-2", f"{stamp}-plain-abc-3"]


# ----------------------------------------------------------------------------------------------
# (d) log_metrics by hand and under the runner's environment variable
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_metrics(monkeypatch):
    monkeypatch.delenv(METRICS_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    reset_metrics()
    yield
    reset_metrics()


def test_log_metrics_by_hand_writes_under_repo_root(tmp_path, monkeypatch, fresh_metrics):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "otkit"\nversion = "0"\n')
    monkeypatch.chdir(repo / "notebooks")

    first = log_metrics(a=1, t=torch.tensor(2.5), label="x")
    merged = log_metrics(b=np.float32(0.25), arr=np.arange(3), flag=np.bool_(True), a=10)
    target = repo / "runs" / "interactive" / "session" / _session_id() / "metrics.json"
    expected = {"a": 10, "t": 2.5, "label": "x", "b": 0.25, "arr": [0, 1, 2], "flag": True}
    assert first == {"a": 1, "t": 2.5, "label": "x"}
    assert merged == expected and _json(target) == expected
    assert current_metrics() == expected
    assert type(_json(target)["flag"]) is bool
    assert not (repo / "notebooks" / "metrics.json").exists()
    assert not [p for p in target.parent.iterdir() if p.name != "metrics.json"]  # no temp files

    # Jupyter names the notebook in JPY_SESSION_NAME: one folder per notebook.
    monkeypatch.setenv("JPY_SESSION_NAME", str(repo / "notebooks" / "02_demo.ipynb"))
    log_metrics(w2=0.5)
    assert _json(repo / "runs" / "interactive" / "02_demo" / _session_id() / "metrics.json") == {"w2": 0.5}


def test_log_metrics_without_repo_uses_current_dir(tmp_path, monkeypatch, fresh_metrics):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')  # not otkit's
    monkeypatch.chdir(tmp_path)
    log_metrics(value=3)
    assert _json(tmp_path / "runs" / "interactive" / "session" / _session_id() / "metrics.json") == {"value": 3}


def test_log_metrics_with_env_var(tmp_path, monkeypatch, fresh_metrics):
    target = tmp_path / "some" / "run" / "metrics.json"
    monkeypatch.setenv(METRICS_ENV, str(target))
    monkeypatch.chdir(tmp_path)
    log_metrics(x=1)
    assert log_metrics({"y-name": [1.5, 2]}) == {"x": 1, "y-name": [1.5, 2]}
    assert _json(target) == {"x": 1, "y-name": [1.5, 2]}
    assert not (tmp_path / "runs").exists()


def test_log_metrics_rejects_bad_values(tmp_path, monkeypatch, fresh_metrics):
    monkeypatch.setenv(METRICS_ENV, str(tmp_path / "metrics.json"))
    with pytest.raises(TypeError, match="'obj'"):
        log_metrics(obj=object())
    with pytest.raises(ValueError, match="'big'"):
        log_metrics(big=np.zeros(MAX_METRIC_ELEMENTS + 1))
    assert not (tmp_path / "metrics.json").exists()


def test_runs_module_imports_no_notebook_stack():
    """otkit.runs is importable without Jupyter: papermill/yaml are imported inside functions."""
    top = set()
    for module in Path(runs.__file__).parent.glob("*.py"):
        top |= _top_level_imports(ast.parse(module.read_text()))
    stack = {"papermill", "nbformat", "nbclient", "jupyter_client", "ipykernel", "IPython", "yaml", "tqdm", "torch"}
    assert not top & stack, top & stack


def _top_level_imports(tree) -> set:
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    return top


# ----------------------------------------------------------------------------------------------
# (e) parameter parsing and grids
# ----------------------------------------------------------------------------------------------


def test_parse_value_like_papermill():
    cases = {"12": 12, "-3": -3, "0.5": 0.5, "1e-3": 1e-3, "True": True, "False": False,
             "None": None, "hello": "hello", "true": "true", "": ""}
    for text, expected in cases.items():
        value = parse_value(text)
        assert value == expected and type(value) is type(expected), text


def test_cli_parameters(tmp_path):
    nbs, sets, args = parse_run_args(
        [str(PLAIN_NB), "-p", "n", "12", "-p", "x", "0.5", "-p", "flag", "True",
         "-p", "name", "hello", "-r", "raw", "12", "-y", "{eps: [0.1, 0.2], n: 3}", "--quick"]
    )
    assert nbs == [PLAIN_NB]
    assert sets == [{"eps": [0.1, 0.2], "n": 12, "x": 0.5, "flag": True, "name": "hello", "raw": "12"}]
    s = sets[0]
    assert type(s["n"]) is int and type(s["x"]) is float and s["flag"] is True and type(s["raw"]) is str
    assert args.quick and args.runs_dir == "runs"

    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"seed": [1, 2]}))
    _, sets, _ = parse_run_args([str(PLAIN_NB), "-p", "n", "4", "--grid", str(grid)])
    assert sets == [{"n": 4, "seed": 1}, {"n": 4, "seed": 2}]
    with pytest.raises(ValueError, match="seed"):
        parse_run_args([str(PLAIN_NB), "-p", "seed", "4", "--grid", str(grid)])


def test_grid_files_yaml_and_json(tmp_path):
    product = [{"n": n, "eps": e, "method": "sinkhorn"} for n in (10, 100) for e in (0.1, 0.01)]
    (tmp_path / "g.yaml").write_text("n: [10, 100]\neps: [0.1, 0.01]\nmethod: sinkhorn\n")
    (tmp_path / "g.json").write_text(json.dumps({"n": [10, 100], "eps": [0.1, 0.01], "method": ["sinkhorn"]}))
    assert load_grid(tmp_path / "g.yaml") == product
    assert load_grid(tmp_path / "g.json") == product

    (tmp_path / "list.yml").write_text("- {n: 1}\n- {n: 2, quick: true}\n")
    assert load_grid(tmp_path / "list.yml") == [{"n": 1}, {"n": 2, "quick": True}]
    (tmp_path / "list.json").write_text('[{"n": 1}, {"sizes": [1, 2]}]')
    assert load_grid(tmp_path / "list.json") == [{"n": 1}, {"sizes": [1, 2]}]

    (tmp_path / "both.yaml").write_text("grid: {n: [1, 2]}\nruns:\n  - {n: 10, eps: 0.5}\n")
    assert load_grid(tmp_path / "both.yaml") == [{"n": 1}, {"n": 2}, {"n": 10, "eps": 0.5}]
    assert expand_grid({"sizes": [[10, 20]]}) == [{"sizes": [10, 20]}]


def test_grid_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_grid(tmp_path / "missing.yaml")
    bad = {
        "broken.json": ('{"n": [1, 2]', "not valid JSON"),
        "broken.yaml": ("n: [1, 2\n", "not valid YAML"),
        "broken.txt": ("n: [1, 2\n", "neither|nor JSON"),
        "scalar.yaml": ("42\n", "mapping"),
        "words.txt": ("just some words\n", "mapping"),
        "items.json": ("[1, 2]", "item 0"),
        "empty.yaml": ("n: []\n", "empty"),
        "badname.json": ('{"not an identifier": [1]}', "identifier"),
    }
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            load_grid(tmp_path / name)
        if "grid file" in str(info.value):
            assert name in str(info.value)


def test_bad_arguments_name_the_argument(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="notebooks: .*nope.ipynb"):
        run_notebooks([tmp_path / "nope.ipynb"], None, runs_dir=tmp_path / "runs")
    with pytest.raises(TypeError, match="parameter_sets"):
        run_notebooks([PLAIN_NB], "n=3", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing created before the checks pass

    with pytest.raises(SystemExit) as info:
        runs.main(["run", str(tmp_path / "nope.ipynb"), "--runs-dir", str(tmp_path / "runs")])
    assert info.value.code == 2 and "nope.ipynb" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        runs.main(["summary", "--runs-dir", str(tmp_path / "nothing")])
    assert info.value.code == 2 and "runs_dir" in capsys.readouterr().err
