"""What a reader sees of otkit.runs: text tables (display width), the metrics table that
``log_metrics`` shows, the Voilà app switch, and the static gallery of executed notebooks.

No kernel is started: the gallery's runs are written by hand (status.json and an executed
notebook made with nbformat), the Voilà environment is set with monkeypatch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from otkit import runs
from otkit.runs import METRICS_ENV, LoggedMetrics, log_metrics, reset_metrics
from otkit.runs.app import in_voila, query_flag, skip_studies_in_voila
from otkit.runs.gallery import latest_ok_runs, write_gallery
from otkit.runs.tables import (
    dict_table,
    display_width,
    format_value,
    metrics_html,
    text_table,
)

# ------------------------------------------------------------------ text tables


def test_display_width_counts_columns_not_code_points():
    assert display_width("abc") == 3
    assert len("ε̃") == 2 and display_width("ε̃") == 1  # ε + COMBINING TILDE
    assert display_width("sinkhorn ε̃=0.01") == len("sinkhorn e=0.01")
    assert display_width("日本") == 4  # East Asian wide
    assert display_width("a\u200bb") == 2  # zero-width space


def _column_starts(line: str, cells: list[str]) -> list[int]:
    """The display column at which each cell starts in ``line``."""
    starts, at = [], 0
    for cell in cells:
        i = line.index(cell, at)
        starts.append(display_width(line[:i]))
        at = i + len(cell)
    return starts


def test_tables_align_columns_after_a_combining_character():
    rows = [{"coupling": "sinkhorn ε̃=0.01", "n": 256, "w2": 0.2123},
            {"coupling": "exact", "n": 1024, "w2": 0.25}]
    lines = dict_table(rows).splitlines()
    starts = [_column_starts(lines[2], ["sinkhorn ε̃=0.01", "256", "0.2123"]),
              _column_starts(lines[3], ["exact", "1024", "0.25"]),
              _column_starts(lines[0], ["coupling", "n", "w2"])]
    assert starts[0] == starts[1] == starts[2], (starts, lines)
    assert display_width(lines[1]) == max(display_width(line) for line in lines)  # the rule spans it
    # the same in a header (notebook 03's cost table)
    table = text_table(["n", "OT-FM Sinkhorn ε̃=0.01 (s)", "ratio"], [["256", "0.05", "35"]]).splitlines()
    assert _column_starts(table[0], ["ratio"]) == _column_starts(table[2], ["35"])


# ------------------------------------------------------------------ the metrics table


@pytest.fixture
def metrics_file(tmp_path, monkeypatch):
    reset_metrics()
    monkeypatch.setenv(METRICS_ENV, str(tmp_path / "metrics.json"))
    yield tmp_path / "metrics.json"
    reset_metrics()


def test_format_value():
    assert format_value(0.123456) == "0.1235" and format_value(-0.0) == "0" and format_value(-1e-9) == "-1e-09"
    assert format_value(-4e-5, digits=1) == "-4e-05" and format_value(-0.00001, 2) == "-1e-05"
    assert [format_value(v) for v in (math.inf, -math.inf, math.nan)] == ["inf", "-inf", "nan"]
    assert format_value(True) == "True" and format_value(None) == "None" and format_value(3) == "3"
    assert format_value([0.5, 2, "a b"]) == '[0.5, 2, "a b"]'
    assert format_value({"d=2 n=1000": 0.123456}) == "{d=2 n=1000: 0.1235}"


def test_log_metrics_returns_a_dict_shown_as_a_table(metrics_file):
    shown = log_metrics(w2=0.123456, converged=True, curve=[1.0, 0.5])
    shown = log_metrics(label="sinkhorn ε̃=0.01", gap=-0.0)
    assert isinstance(shown, dict) and isinstance(shown, LoggedMetrics)
    assert shown == {"w2": 0.123456, "converged": True, "curve": [1.0, 0.5],
                     "label": "sinkhorn ε̃=0.01", "gap": -0.0}
    assert shown.path == metrics_file and json.loads(metrics_file.read_text())["w2"] == 0.123456

    text = repr(shown)
    assert "{" not in text.splitlines()[0] and text.splitlines()[0].split() == ["metric", "value"]
    assert "w2         0.1235" in text and "gap        0" in text and "curve      [1, 0.5]" in text

    page = shown._repr_html_()
    assert page.startswith('<table class="otkit-metrics"') and page.count("<tr>") == 1 + 5
    assert "<code>w2</code>" in page and ">0.1235</td>" in page and 'title="0.123456"' in page
    assert "-0" not in page.replace("-0.0", "")  # -0.0 shown as 0 (the title keeps repr)


def test_ipython_shows_the_table_not_a_raw_dict(metrics_file):
    """What a notebook cell ending in log_metrics(...) displays: IPython's formatters."""
    formatter = pytest.importorskip("IPython.core.formatters")
    shown = log_metrics(a=1.5, b="x")
    html = formatter.HTMLFormatter()(shown)
    plain = formatter.PlainTextFormatter()(shown)
    assert html and 'class="otkit-metrics"' in html
    assert not plain.lstrip().startswith("{") and plain.splitlines()[0].split() == ["metric", "value"]


def test_metrics_html_escapes():
    page = metrics_html({"<b>": "<script>"})
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page


# ------------------------------------------------------------------ notebooks as Voilà apps


class _Shell:
    def __init__(self):
        self.input_transformers_post = []


def test_outside_voila_every_cell_runs(monkeypatch):
    for name in ("VOILA_KERNEL_ID", "SERVER_SOFTWARE", "QUERY_STRING"):
        monkeypatch.delenv(name, raising=False)
    shell = _Shell()
    assert not in_voila()
    assert skip_studies_in_voila("1 min", shell=shell) is None and shell.input_transformers_post == []


def test_voila_app_skips_the_studies_unless_asked(monkeypatch, capsys):
    monkeypatch.setenv("VOILA_KERNEL_ID", "k-1")
    monkeypatch.setenv("QUERY_STRING", "")
    pytest.importorskip("IPython")
    shell = _Shell()
    assert in_voila()
    skip_studies_in_voila("about 1 min", shell=shell)
    assert len(shell.input_transformers_post) == 1
    skip = shell.input_transformers_post[0]
    assert skip(["x = heavy_study()\n", "print(x)\n"]) == []  # later cells run empty
    skip_studies_in_voila(shell=shell)
    assert len(shell.input_transformers_post) == 1  # installed once

    for query, wanted in [("studies=1", True), ("studies", True), ("studies=yes", True),
                          ("a=2&studies=true", True), ("studies=0", False), ("other=1", False)]:
        monkeypatch.setenv("QUERY_STRING", query)
        assert query_flag("studies") is wanted, query
        fresh = _Shell()
        skip_studies_in_voila(shell=fresh)
        assert bool(fresh.input_transformers_post) != wanted, query

    monkeypatch.delenv("VOILA_KERNEL_ID")
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5.13")
    monkeypatch.setenv("QUERY_STRING", "")
    shell = _Shell()
    skip_studies_in_voila(shell=shell)
    assert in_voila() and len(shell.input_transformers_post) == 1


# ------------------------------------------------------------------ the gallery


def _fake_run(runs_dir: Path, name: str, notebook: str, status: str, started: str,
              outputs: list | None = None, metrics: dict | None = None) -> Path:
    """A run folder as the runner leaves it, with an executed notebook made by nbformat."""
    nbformat = pytest.importorskip("nbformat")
    run = runs_dir / name
    run.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"big": "x" * 1000}}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Title of {notebook}\n\nText."),
                nbformat.v4.new_code_cell("print('hi')", outputs=outputs or [])]
    nbformat.write(nb, run / notebook)
    (run / "status.json").write_text(json.dumps({
        "status": status, "notebook": f"/somewhere/notebooks/{notebook}", "parameters": {"quick": True},
        "started": started, "duration_s": 61.0, "error": None if status == "ok" else "Boom",
    }))
    (run / "params.json").write_text(json.dumps({"quick": True}))
    (run / "metrics.json").write_text(json.dumps(metrics or {}))
    return run


def test_gallery_renders_the_latest_ok_run_of_each_notebook(tmp_path):
    pytest.importorskip("nbconvert")
    nbformat = pytest.importorskip("nbformat")
    widget = nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "VBox(children=(...))"})
    printed = nbformat.v4.new_output("stream", name="stdout", text="a printed line\n")
    a, b = tmp_path / "runs-a", tmp_path / "runs-b"
    _fake_run(a, "r1-00_tour", "00_tour.ipynb", "ok", "2026-01-01T10:00:00+00:00", [printed])
    _fake_run(a, "r2-00_tour", "00_tour.ipynb", "ok", "2026-01-02T10:00:00+00:00",
              [printed, widget, widget], metrics={"w2": 0.25})
    _fake_run(a, "r3-00_tour", "00_tour.ipynb", "failed", "2026-01-03T10:00:00+00:00", [printed])
    _fake_run(b, "r1-01_x", "01_x.ipynb", "ok", "2026-01-01T11:00:00+00:00", [printed])

    chosen = latest_ok_runs(runs.summarize(a) + runs.summarize(b))
    assert {k: v.name for k, v in chosen.items()} == {"00_tour.ipynb": "r2-00_tour", "01_x.ipynb": "r1-01_x"}

    out = tmp_path / "gallery"
    pages = write_gallery([a, b], out=out, notebooks=["notebooks/00_tour.ipynb", "02_missing.ipynb"])
    assert [p.path.name for p in pages] == ["00_tour.html", "01_x.html"]
    assert pages[0].title == "Title of 00_tour.ipynb" and pages[0].record.name == "r2-00_tour"
    page = (out / "00_tour.html").read_text()
    assert "<title>Title of 00_tour.ipynb</title>" in page and "a printed line" in page
    assert "widget-state" not in page and "x" * 1000 not in page  # no widget state
    assert page.count('class="otkit-gallery-widget"') == 1  # one note for the cell's widgets
    assert 'class="otkit-gallery-banner"' in page and "r2-00_tour" in page
    assert 'class="otkit-metrics"' in page and "<code>w2</code>" in page
    index = (out / "index.html").read_text()
    assert 'href="00_tour.html"' in index and 'href="01_x.html"' in index
    assert "02_missing.ipynb" in index  # named as lacking a successful run

    # the command line: default folder <runs dir>/gallery; a missing notebook makes status 1
    assert runs.main(["gallery", "--runs-dir", str(a)]) == 0
    assert (a / "gallery" / "00_tour.html").is_file() and (a / "gallery" / "index.html").is_file()
    assert runs.main(["gallery", "--runs-dir", str(a), "--notebooks", "01_x.ipynb"]) == 1
    with pytest.raises(SystemExit):
        runs.main(["gallery", "--runs-dir", str(tmp_path / "nothing")])
    # the gallery folder is not a run: summaries ignore it
    assert [r.name for r in runs.summarize(a)] == ["r1-00_tour", "r2-00_tour", "r3-00_tour"]
