"""``python -m otkit``: command-line entry points.

    python -m otkit run NOTEBOOK... [-p NAME VALUE]... [-g GRID] [--quick] [--resume] [--runs-dir DIR]
    python -m otkit summary [--runs-dir DIR]
    python -m otkit gallery [--runs-dir DIR] [--out DIR]

All are the batch runner of :mod:`otkit.runs` (same options as ``python -m otkit.runs``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_USAGE = """usage: python -m otkit run NOTEBOOK... [-p NAME VALUE]... [-y YAML] [-g GRID] [--quick] [--resume] [--runs-dir DIR]
       python -m otkit summary [--runs-dir DIR]
       python -m otkit gallery [--runs-dir DIR] [--out DIR]

commands:
  run       execute notebooks with papermill into runs/ (see `python -m otkit run --help`)
  summary   print a table of the runs and write runs/index.html
  gallery   render the latest successful run of each notebook to static HTML
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``run``, ``summary`` and ``gallery`` to :func:`otkit.runs.main`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, end="")
        return 0 if argv else 2
    if argv[0] in ("run", "summary", "gallery"):
        from .runs import main as runs_main

        return runs_main(argv, prog="python -m otkit")
    print(f"python -m otkit: unknown command {argv[0]!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
