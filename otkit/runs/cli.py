"""The command line: ``python -m otkit.runs [run] ...``, ``... summary`` and ``... gallery``."""


import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .execute import _resolve_notebooks, run_notebooks
from .files import INDEX_FILE, KERNEL_NAME
from .params import _check_parameters, _parse_yaml_snippet, load_grid, parse_value
from .records import _display_path, format_table, summarize, write_index

_PROG = "python -m otkit.runs"


def _run_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} [run]" if prog == _PROG else f"{prog} run",
        description=(
            "Execute notebooks with papermill (kernel python3, working directory = each "
            "notebook's folder), one run directory per notebook and parameter set under "
            "--runs-dir: the executed notebook, params.json, metrics.json, status.json, log.txt."
        ),
        epilog=(
            "Values of -p are parsed as papermill does: True/False -> bool, None, ints, floats, "
            "else strings. A grid file (YAML or JSON) is a mapping name -> list of values "
            "(cartesian product), a list of parameter mappings, or {grid: ..., runs: [...]}. "
            "-p/-y/-r values apply to every run. Exit status: 0 if every run is ok, 1 if any "
            "failed, 2 on a usage error."
        ),
    )
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help=".ipynb files to run")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter, value parsed like papermill's -p (repeatable)")
    p.add_argument("-r", "--parameter-raw", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter kept as a string (repeatable)")
    p.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                   help='parameters as a YAML mapping, e.g. -y "{n: 100, eps: [0.1, 0.01]}" (repeatable)')
    p.add_argument("-g", "--grid", action="append", default=[], metavar="FILE",
                   help="YAML/JSON grid file; its parameter sets are concatenated (repeatable)")
    p.add_argument("--quick", action="store_true", help="set quick=True for every run")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="base folder of the runs (default: runs)")
    p.add_argument("--name", default=None, help="run-directory suffix instead of the parameters' hash")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per-cell timeout")
    p.add_argument("--kernel", default=KERNEL_NAME, help=f"Jupyter kernel (default: {KERNEL_NAME})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true",
                   help="skip runs that already finished ok under --runs-dir with the same parameters "
                        "and the same notebook content (SHA-256); failed, interrupted and stale runs "
                        "run again, in new directories")
    return p


def _summary_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} summary",
        description=(
            "Print a table of every run under --runs-dir and write <runs-dir>/index.html. A run "
            "whose status.json says running but whose runner process is gone shows as stale."
        ),
    )
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="folder of the runs (default: runs)")
    p.add_argument("--wide", action="store_true", help="do not clip the parameters and metrics columns")
    p.add_argument("--no-html", action="store_true", help="only print the table")
    return p


def _gallery_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} gallery",
        description=(
            "Render the latest successful run of each notebook under --runs-dir to static HTML "
            "(nbconvert; no widget state) with an index page linking them."
        ),
    )
    p.add_argument("--runs-dir", action="append", default=None, metavar="DIR",
                   help="folder of the runs (default: runs; repeatable)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the gallery's folder (default: <first runs dir>/gallery)")
    p.add_argument("--notebooks", nargs="*", default=None, metavar="NOTEBOOK",
                   help="notebooks the gallery should cover: those without a successful run are "
                        "named on the index page and make the exit status 1")
    return p


def parse_run_args(argv: Sequence[str], prog: str = _PROG) -> tuple[list[Path], list[dict[str, Any]], argparse.Namespace]:
    """Parse the ``run`` command line into (notebooks, parameter sets, options).

    ``-y`` snippets apply first, then ``-p`` (values through :func:`parse_value`), then ``-r``
    (raw strings); these apply to every run. Each ``--grid`` file adds its parameter sets
    (:func:`load_grid`); a parameter given both ways is an error. ``--quick`` is applied by
    :func:`run_notebooks`. Raises FileNotFoundError, ValueError or TypeError naming the argument
    (argparse's own errors exit with status 2).
    """
    args = _run_parser(prog).parse_args(list(argv))
    notebooks = _resolve_notebooks(args.notebooks)
    base: dict[str, Any] = {}
    for snippet in args.parameters_yaml:
        base.update(_parse_yaml_snippet(snippet))
    for pname, value in args.parameter:
        base[pname] = parse_value(value)
    for pname, value in args.parameter_raw:
        base[pname] = value
    base = _check_parameters(base, "-p/-r/-y")
    if not args.grid:
        return notebooks, [base], args
    sets: list[dict[str, Any]] = []
    for g in args.grid:
        sets.extend(load_grid(g))
    for s in sets:
        clash = sorted(set(s) & set(base))
        if clash:
            raise ValueError(
                f"parameter(s) {', '.join(clash)} given both by -p/-r/-y and by --grid; "
                "give each parameter in one place"
            )
    return notebooks, [{**base, **s} for s in sets], args


def _cmd_run(argv: Sequence[str], prog: str) -> int:
    parser = _run_parser(prog)
    try:
        notebooks, sets, args = parse_run_args(argv, prog)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        parser.error(str(exc))

    n = len(notebooks) * len(sets)
    print(f"otkit runs: {len(notebooks)} notebook(s) x {len(sets)} parameter set(s) = {n} run(s) "
          f"into {args.runs_dir}/", file=sys.stderr)
    records = run_notebooks(
        notebooks, sets, runs_dir=args.runs_dir, quick=args.quick, timeout=args.timeout,
        name=args.name, kernel_name=args.kernel, progress=not args.no_progress, resume=args.resume,
    )
    skipped = sum(r.resumed for r in records)
    if skipped:
        print(f"otkit runs: {skipped} of {len(records)} run(s) skipped (--resume: already ok)", file=sys.stderr)
    print(format_table(records))
    print(f"\nindex: {_display_path(Path(args.runs_dir).resolve() / INDEX_FILE)}")
    failed = [r for r in records if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} of {len(records)} run(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {_display_path(r.path)}: {r.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_summary(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        records = summarize(args.runs_dir)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not records:
        print(f"no runs under {args.runs_dir}/")
    else:
        print(format_table(records, max_width=None if args.wide else 60))
    if not args.no_html:
        out = write_index(args.runs_dir, records)
        print(f"\nindex: {_display_path(out)}")
    return 0


def _cmd_gallery(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .gallery import gallery_summary, write_gallery

    dirs = args.runs_dir or ["runs"]
    try:
        pages = write_gallery(dirs, out=args.out, notebooks=args.notebooks)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    out = Path(args.out) if args.out else Path(dirs[0]) / "gallery"
    if pages:
        print(gallery_summary(pages))
    else:
        print(f"no successful run under {', '.join(dirs)}")
    print(f"\ngallery: {_display_path(out.resolve() / INDEX_FILE)}")
    missing = sorted({Path(n).name for n in args.notebooks or []} - {p.notebook for p in pages})
    if missing:
        print(f"no successful run of: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, prog: str = _PROG) -> int:
    """Command-line entry: ``[run] NOTEBOOK... [options]``, ``summary [--runs-dir DIR]`` or
    ``gallery [--runs-dir DIR] [--out DIR]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: {prog} [run] NOTEBOOK... [-p NAME VALUE]... [-y YAML] [-g GRID] [--quick] [--resume] [--runs-dir DIR]\n"
            f"       {prog} summary [--runs-dir DIR]\n"
            f"       {prog} gallery [--runs-dir DIR] [--out DIR]\n\n"
            "Run notebooks with papermill into runs/<timestamp>-<notebook>[-<hash>]/, summarize the runs,\n"
            "or render the latest successful run of each notebook to static HTML (runs/gallery/).\n"
            f"`{prog} run --help`, `{prog} summary --help` and `{prog} gallery --help` give the options."
        )
        return 0 if argv else 2
    if argv[0] == "summary":
        parser = _summary_parser(prog)
        return _cmd_summary(parser.parse_args(argv[1:]), parser)
    if argv[0] == "gallery":
        parser = _gallery_parser(prog)
        return _cmd_gallery(parser.parse_args(argv[1:]), parser)
    if argv[0] == "run":
        argv = argv[1:]
    return _cmd_run(argv, prog)

