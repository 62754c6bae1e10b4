"""Notebooks as Voilà apps: the widget at once, the minutes-long studies only when asked.

Voilà runs a whole notebook before it shows anything, and a widget's callbacks wait for the
kernel to be free. Each notebook therefore shows its widget first and then calls
:func:`skip_studies_in_voila`: in a Voilà app it stops running the code cells that follow
(their markdown still shows) and says so on the page, unless the page was opened with
``?studies=1``. Everywhere else (JupyterLab, papermill runs, nbconvert, scripts) it does
nothing and every cell runs.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from typing import Any

__all__ = ["STUDIES_FLAG", "in_voila", "query_flag", "skip_studies_in_voila"]

#: The query parameter that makes a Voilà app run the studies too: ``...ipynb?studies=1``.
STUDIES_FLAG = "studies"


def in_voila() -> bool:
    """Whether this kernel runs a notebook for Voilà (standalone or Jupyter server's
    ``/voila/render/``): Voilà sets ``VOILA_KERNEL_ID`` before the first cell and
    ``SERVER_SOFTWARE=voila/<version>`` in the kernel's environment."""
    return bool(os.environ.get("VOILA_KERNEL_ID")) or os.environ.get(
        "SERVER_SOFTWARE", ""
    ).startswith("voila")


def query_flag(name: str, default: bool = False) -> bool:
    """A yes/no parameter of the Voilà page's URL (``QUERY_STRING``): ``?name=1`` (or
    ``true``, ``yes``, ``on``, or a bare ``?name``) is True, ``0``/``false``/``no``/``off``
    False, absent ``default``."""
    query = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""), keep_blank_values=True)
    values = query.get(name)
    if not values:
        return default
    return values[-1].strip().lower() not in ("0", "false", "no", "off")


def _skip_cell(lines: list[str]) -> list[str]:
    """IPython input transformer: the cell runs as an empty one."""
    return []


def _note(quick_run: str | None) -> str:
    took = f" (they take {html.escape(quick_run)} on 2 CPU cores)" if quick_run else ""
    return (
        '<div class="otkit-app-note" style="border-left:4px solid #1f77b4;padding:6px 10px;'
        'margin:8px 0;background:rgba(31,119,180,0.07)">'
        "<b>This app runs the widget above only.</b> The studies below are not run here"
        f"{took}: their text shows without its tables and figures. To see them, open this page "
        f"with <code>?{STUDIES_FLAG}=1</code> at the end of its address (it then appears once "
        "they have run), run the notebook in JupyterLab, or read its executed copy in the runs "
        "gallery (<code>make gallery</code>).</div>"
    )


def skip_studies_in_voila(quick_run: str | None = None, *, shell: Any = None) -> None:
    """In a Voilà app, skip the code cells after this one, unless the URL asks for the studies.

    Args:
        quick_run: how long the skipped studies take, for the note on the page
            (e.g. ``"about 1 min"``).
        shell: the IPython shell (default: the running one).

    The following cells run as usual outside Voilà, with ``?studies=1``, or without IPython.
    Otherwise every later cell of this kernel runs as an empty cell (an IPython input
    transformer; Voilà's kernels run one notebook and take no further code) and a note on the
    page says why and how to see the studies. Returns None, so that a cell ending with this
    call shows nothing more.
    """
    if not in_voila() or query_flag(STUDIES_FLAG):
        return
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - Voilà always runs IPython
            return
        shell = get_ipython()
    if shell is None:
        return
    if _skip_cell not in shell.input_transformers_post:
        shell.input_transformers_post.append(_skip_cell)
    from IPython.display import HTML, display

    display(HTML(_note(quick_run)))
