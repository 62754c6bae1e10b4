"""Parameters as papermill's CLI parses them, and grids of parameter sets."""


import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def parse_value(text: str) -> Any:
    """Parse a command-line value as papermill's ``-p`` does.

    ``"True"``/``"False"`` -> bool, ``"None"`` -> None, an int literal -> int, a float literal
    -> float, anything else -> the string itself.
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _check_parameters(params: Any, where: str) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: a parameter set must be a mapping of name -> value, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: parameter name {name!r} is not a Python identifier")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: parameter {name!r} = {value!r} is not JSON-serializable "
                "(use numbers, strings, bools, None, lists and dicts)"
            ) from exc
        out[name] = value
    return out


def expand_grid(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cartesian product of a mapping ``name -> list of values`` (a scalar is one value).

    To give one parameter a list as its single value, wrap it: ``{"sizes": [[10, 20]]}``.
    An empty mapping gives one empty parameter set.
    """
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid: expected a mapping of name -> list of values, got {type(grid).__name__}")
    names = list(grid)
    choices = []
    for name in names:
        value = grid[name]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise ValueError(f"grid: parameter {name!r} has an empty list of values")
        choices.append(values)
    sets = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
    return [_check_parameters(s, "grid") for s in sets]


def _sets_from_data(data: Any, where: str) -> list[dict[str, Any]]:
    """Parameter sets from parsed grid data (see :func:`load_grid` for the accepted shapes)."""
    if isinstance(data, Mapping):
        keys = set(data)
        grid_ok = "grid" not in data or isinstance(data["grid"], Mapping) or (
            isinstance(data["grid"], list) and all(isinstance(g, Mapping) for g in data["grid"])
        )
        runs_ok = "runs" not in data or (
            isinstance(data["runs"], list) and all(isinstance(r, Mapping) for r in data["runs"])
        )
        structured = bool(keys) and keys <= {"grid", "runs"} and grid_ok and runs_ok
        if structured:
            sets: list[dict[str, Any]] = []
            grids = data.get("grid")
            for g in [grids] if isinstance(grids, Mapping) else (grids or []):
                sets.extend(expand_grid(g))
            for i, r in enumerate(data.get("runs") or []):
                sets.append(_check_parameters(r, f"{where}: runs[{i}]"))
            if not sets:
                raise ValueError(f"{where}: 'grid' and 'runs' give no parameter set")
            return sets
        return expand_grid(data)
    if isinstance(data, list):
        if not data:
            raise ValueError(f"{where}: the list of parameter sets is empty")
        out = []
        for i, item in enumerate(data):
            if not isinstance(item, Mapping):
                raise ValueError(f"{where}: item {i} of the list is a {type(item).__name__}, not a mapping of parameters")
            out.append(_check_parameters(item, f"{where}: item {i}"))
        return out
    raise ValueError(
        f"{where}: expected a mapping (name -> list of values, expanded as a grid) or a list of "
        f"parameter mappings, got {type(data).__name__}"
    )


def load_grid(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read parameter sets from a YAML or JSON file.

    Accepted shapes:

    * a mapping ``name -> list of values``: the cartesian product (a scalar is a single value);
    * a list of mappings: explicit parameter sets, run as given;
    * a mapping with keys ``grid`` (a mapping, or a list of mappings) and/or ``runs`` (a list
      of mappings): the grid's product followed by the explicit sets.

    ``.json`` files are read as JSON, ``.yaml``/``.yml`` as YAML, anything else as JSON and
    then YAML. Raises FileNotFoundError or ValueError naming the file.
    """
    p = Path(path)
    where = f"grid file {str(p)!r}"
    if not p.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where} is not valid JSON: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except ValueError:
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - pyyaml ships with the notebook stack
                raise ValueError(f"{where}: reading YAML needs pyyaml (pip install pyyaml)") from exc
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                kind = "YAML" if suffix in (".yaml", ".yml") else "YAML nor JSON"
                raise ValueError(f"{where} is not valid {kind}: {exc}") from exc
    return _sets_from_data(data, where)


def _parse_yaml_snippet(text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover
        raise ValueError("-y/--parameters-yaml needs pyyaml (pip install pyyaml)") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"-y/--parameters-yaml {text!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"-y/--parameters-yaml {text!r} must be a mapping of name: value, got {type(data).__name__}")
    return _check_parameters(data, "-y/--parameters-yaml")
