"""Every notebook runs under papermill with its quick parameters; its metrics match references.

The references (tests/notebooks/references/<notebook>.json, one file per notebook) give, per
metric, either an exact value (``{"equals": ...}``) or bounds (``{"min": ..., "max": ...}``):
what the paper's claim or the tour's point requires, not a snapshot of one run's digits.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otkit.runs import summarize

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REFERENCE_DIR = Path(__file__).parent / "references"
REFERENCES = {
    path.stem + ".ipynb": json.loads(path.read_text()) for path in sorted(REFERENCE_DIR.glob("*.json"))
}


def test_every_notebook_has_references():
    assert NOTEBOOKS, "no notebooks found"
    missing = [nb.name for nb in NOTEBOOKS if nb.name not in REFERENCES]
    assert not missing, f"add references for {missing} to tests/notebooks/references/<notebook>.json"


# The quick runs start at collection (conftest.py: NotebookQueue, the notebook_runs fixture).


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_reproduces_its_claims(notebook, notebook_runs):
    future, runs_dir = notebook_runs[notebook]
    process = future.result()
    records = summarize(runs_dir)
    assert len(records) == 1, f"{notebook.name}: no run recorded\n{process.stdout}\n{process.stderr}"
    record = records[0]
    assert record.status == "ok", f"{notebook.name} failed: {record.error}"
    problems = []
    for name, ref in REFERENCES[notebook.name].items():
        if name not in record.metrics:
            problems.append(f"{name}: not recorded")
            continue
        value = record.metrics[name]
        if "equals" in ref and value != ref["equals"]:
            problems.append(f"{name} = {value!r}, expected {ref['equals']!r}")
        if "one_of" in ref and value not in ref["one_of"]:
            problems.append(f"{name} = {value!r}, expected one of {ref['one_of']!r}")
        if "min" in ref and not value >= ref["min"]:
            problems.append(f"{name} = {value!r} < {ref['min']}")
        if "max" in ref and not value <= ref["max"]:
            problems.append(f"{name} = {value!r} > {ref['max']}")
    assert not problems, f"{notebook.name}: " + "; ".join(problems)


@pytest.mark.notebooks
@pytest.mark.slow
def test_gallery_has_a_page_per_notebook(notebook_runs, tmp_path):
    """After the quick runs above, ``python -m otkit.runs gallery`` renders one static page per
    notebook that ran ok (no widget state), and its index links every page."""
    if not notebook_runs:
        pytest.skip("no notebook run selected (the gallery renders the runs of the test above)")
    for future, _ in notebook_runs.values():
        future.result()
    ran_ok = sorted(nb.name for nb, (_, d) in notebook_runs.items()
                    if [r.status for r in summarize(d)] == ["ok"])
    out = tmp_path / "gallery"
    command = [sys.executable, "-m", "otkit.runs", "gallery", "--out", str(out)]
    for _, runs_dir in notebook_runs.values():
        command += ["--runs-dir", str(runs_dir)]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stdout + process.stderr
    pages = sorted(p.name for p in out.glob("*.html") if p.name != "index.html")
    assert pages == [Path(nb).stem + ".html" for nb in ran_ok], (pages, ran_ok)
    index = (out / "index.html").read_text()
    for page in pages:
        assert f'href="{page}"' in index, page
        text = (out / page).read_text()
        assert "widget-state+json" not in text and len(text) < 5_000_000, page
        assert 'class="otkit-gallery-banner"' in text, page
