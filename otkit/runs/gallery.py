"""A static gallery of executed notebooks: the latest successful run of each, as HTML.

``python -m otkit.runs gallery`` (or ``make gallery``) reads every run under ``--runs-dir``
(several folders may be given), keeps for each notebook the run that finished ``ok`` last,
and renders its executed copy with nbconvert to ``<out>/<notebook stem>.html``, beside an
``index.html`` linking them. Default ``<out>``: ``<first runs dir>/gallery``.

The pages are plain HTML: no widget state (runs are executed with ``store_widget_state=False``,
and any ``metadata.widgets`` left is dropped), and each widget output, which would need a live
kernel, is replaced by a one-line note. A banner on each page names the run (notebook,
parameters, start, duration) and shows its metrics. nbconvert is imported only here, when a
gallery is made (it comes with JupyterLab and Voilà).
"""

from __future__ import annotations

import copy
import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import INDEX_FILE, _atomic_write_text, _now
from .records import RunRecord, _fmt_duration, _fmt_mapping, summarize
from .tables import metrics_html

__all__ = ["GALLERY_DIR", "GalleryPage", "latest_ok_runs", "write_gallery"]

#: The gallery's folder under the runs directory (when no ``out`` is given).
GALLERY_DIR = "gallery"

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = (
    '<div class="otkit-gallery-widget" style="color:#666;font-style:italic">'
    "(an interactive widget: it runs in the notebook, not in this static copy)</div>"
)


@dataclass(frozen=True)
class GalleryPage:
    """One page of the gallery: the notebook's name, its run and the HTML file written."""

    notebook: str
    title: str
    record: RunRecord
    path: Path


def latest_ok_runs(records: Iterable[RunRecord]) -> dict[str, RunRecord]:
    """For each notebook (by file name), its run that finished ``ok`` last (by start time),
    among those whose executed copy exists; sorted by notebook name."""
    best: dict[str, RunRecord] = {}
    for r in records:
        if r.status != "ok" or not r.executed_notebook.is_file():
            continue
        name = Path(r.notebook).name
        if name not in best or (r.started or "", r.name) >= (best[name].started or "", best[name].name):
            best[name] = r
    return dict(sorted(best.items()))


def _title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                m = re.match(r"#\s+(.+)", line.strip())
                if m:
                    return m.group(1).strip()
            break
    return fallback


def _banner(record: RunRecord, title: str) -> str:
    params = _fmt_mapping(record.parameters) or "the notebook's defaults"
    started = (record.started or "")[:19].replace("T", " ")
    metrics = metrics_html(record.metrics, caption=f"metrics ({len(record.metrics)})") if record.metrics else ""
    return (
        '<div class="otkit-gallery-banner" style="border:1px solid #ccc;border-radius:4px;'
        'padding:8px 12px;margin:8px 0 16px;background:#f7f7f7;font-size:0.95em">'
        f'<a href="{INDEX_FILE}">&larr; all notebooks</a><br>'
        f"Executed copy of <code>{html.escape(Path(record.notebook).name)}</code> "
        f"({html.escape(title)}): run <code>{html.escape(record.name)}</code>, started "
        f"{html.escape(started)}, {html.escape(_fmt_duration(record.duration_s))}, parameters "
        f"{html.escape(params)}.{metrics}</div>"
    )


def _prepare(nb: Any, record: RunRecord, title: str) -> Any:
    """A copy of the executed notebook for a static page: widget outputs and state replaced,
    the run's banner first."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs, noted = [], False
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if _WIDGET_MIME in data:
                if not noted:  # one note per cell, whatever the number of widgets in it
                    outputs.append(nbformat.v4.new_output("display_data", data={"text/html": _WIDGET_NOTE}))
                    noted = True
                continue
            outputs.append(out)
        cell.outputs = outputs
    nb.cells.insert(0, nbformat.v4.new_raw_cell(_banner(record, title), metadata={"format": "text/html"}))
    return nb


def _exporter() -> Any:
    try:
        from nbconvert import HTMLExporter
    except ImportError as exc:  # pragma: no cover - nbconvert comes with jupyterlab and voila
        raise ImportError("the gallery needs nbconvert: pip install -r requirements.txt") from exc
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = False
    return exporter


_INDEX_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; padding: 0 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.nw { white-space: nowrap; }
.params { color: #555; font-size: 0.9em; }
""".strip()


def _index(pages: Sequence[GalleryPage], missing: Sequence[str]) -> str:
    rows = []
    for p in pages:
        r = p.record
        rows.append(
            "<tr>"
            f'<td><a href="{html.escape(p.path.name)}">{html.escape(p.notebook)}</a></td>'
            f"<td>{html.escape(p.title)}</td>"
            f'<td class="nw">{html.escape((r.started or "")[:16].replace("T", " "))}</td>'
            f'<td class="nw">{html.escape(_fmt_duration(r.duration_s))}</td>'
            f'<td class="params">{html.escape(_fmt_mapping(r.parameters))}</td>'
            f"<td>{len(r.metrics)}</td>"
            "</tr>"
        )
    note = ""
    if missing:
        note = ("<p>No successful run yet of: " + ", ".join(f"<code>{html.escape(m)}</code>" for m in missing)
                + " (<code>python -m otkit.runs NOTEBOOK --quick</code> makes one).</p>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>otkit notebooks: executed copies</title>
<style>
{_INDEX_STYLE}
</style>
</head>
<body>
<h1>otkit notebooks: executed copies</h1>
<p>The latest successful run of each notebook, rendered to static HTML (code, printed tables,
figures and metrics; the interactive widgets need a live kernel: open the notebook for them).
Generated {html.escape(_now().strftime("%Y-%m-%d %H:%M:%S %Z"))}.</p>
<table id="gallery">
<thead><tr><th>notebook</th><th>title</th><th>run started</th><th>duration</th><th>parameters</th><th>metrics</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
{note}
</body>
</html>
"""


def write_gallery(
    runs_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = "runs",
    out: str | os.PathLike[str] | None = None,
    notebooks: Iterable[str | os.PathLike[str]] | None = None,
) -> list[GalleryPage]:
    """Render the latest ``ok`` run of each notebook to ``<out>/<stem>.html`` plus ``index.html``.

    Args:
        runs_dirs: one runs folder or several (each as :func:`~otkit.runs.summarize` reads it).
        out: the gallery's folder (default ``<first runs dir>/gallery``); pages of notebooks
            that are no longer in the gallery are left alone, the index lists the current ones.
        notebooks: the notebooks the gallery should cover (paths or file names); those without
            a successful run are named on the index page. Default: every notebook with a run.

    Returns:
        The pages written, sorted by notebook name. Raises FileNotFoundError when no runs
        folder exists.
    """
    if isinstance(runs_dirs, (str, os.PathLike)):
        runs_dirs = [runs_dirs]
    dirs = [Path(d) for d in runs_dirs]
    if not dirs:
        raise ValueError("runs_dirs: no runs folder given")
    existing = [d for d in dirs if d.is_dir()]
    if not existing:
        raise FileNotFoundError(f"runs_dirs: none of {[str(d) for d in dirs]} exists (no runs yet?)")
    records = [r for d in existing for r in summarize(d)]
    chosen = latest_ok_runs(records)
    out_dir = Path(out) if out is not None else dirs[0] / GALLERY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)

    import nbformat

    exporter = _exporter()
    pages = []
    for name, record in chosen.items():
        nb = nbformat.read(record.executed_notebook, as_version=4)
        title = _title(nb, Path(name).stem)
        body, _ = exporter.from_notebook_node(_prepare(nb, record, title),
                                              resources={"metadata": {"name": title}})
        page = out_dir / f"{Path(name).stem}.html"
        _atomic_write_text(page, body)
        pages.append(GalleryPage(notebook=name, title=title, record=record, path=page))
    wanted = [Path(n).name for n in notebooks] if notebooks is not None else []
    missing = sorted(set(wanted) - set(chosen))
    _atomic_write_text(out_dir / INDEX_FILE, _index(pages, missing))
    return pages


def gallery_summary(pages: Sequence[GalleryPage]) -> str:
    """One line per page: the notebook, its run, the HTML file (for the command line)."""
    from .records import _display_path

    return "\n".join(f"{p.notebook:34s} {p.record.name:45s} {_display_path(p.path)}" for p in pages)
