"""Every notebook runs under papermill with its quick parameters; its metrics match references.

The references (tests/notebook_references.json) give, per notebook and metric, either an
exact value (``{"equals": ...}``) or bounds (``{"min": ..., "max": ...}``): what the paper's
claim or the tour's point requires, not a snapshot of one run's digits.
"""

import json
from pathlib import Path

import pytest

from otkit.runs import run_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REFERENCES = json.loads((Path(__file__).parent / "notebook_references.json").read_text())


def test_every_notebook_has_references():
    assert NOTEBOOKS, "no notebooks found"
    missing = [nb.name for nb in NOTEBOOKS if nb.name not in REFERENCES]
    assert not missing, f"add references for {missing} to tests/notebook_references.json"


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_reproduces_its_claims(notebook, tmp_path):
    (record,) = run_notebooks(
        [notebook], [{"show_widget": False}], runs_dir=tmp_path, quick=True, progress=False
    )
    assert record.status == "ok", f"{notebook.name} failed: {record.error}"
    problems = []
    for name, ref in REFERENCES[notebook.name].items():
        if name not in record.metrics:
            problems.append(f"{name}: not recorded")
            continue
        value = record.metrics[name]
        if "equals" in ref and value != ref["equals"]:
            problems.append(f"{name} = {value!r}, expected {ref['equals']!r}")
        if "min" in ref and not value >= ref["min"]:
            problems.append(f"{name} = {value!r} < {ref['min']}")
        if "max" in ref and not value <= ref["max"]:
            problems.append(f"{name} = {value!r} > {ref['max']}")
    assert not problems, f"{notebook.name}: " + "; ".join(problems)
