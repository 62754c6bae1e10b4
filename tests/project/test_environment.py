"""The environment files agree with each other and with what is installed.

requirements.txt holds the exact pins. environment.yml (conda, local users) and
binder/requirements.txt (Binder ignores the root when binder/ exists) must list the same
pins; pyproject.toml's loose ranges must name only pinned packages and accept the pins;
and the interpreter running the tests must have every pin installed.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]


def _parse_pin_lines(lines, source: str) -> dict[str, str]:
    """Map canonical package name -> pinned version for `name==version` lines.

    Blank lines, comments and pip options (lines starting with '-') are skipped; anything
    else that is not an exact `==` pin is an error naming the line.
    """
    pins: dict[str, str] = {}
    for raw in lines:
        line = str(raw).split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:  # pragma: no cover - message path
            raise AssertionError(f"{source}: cannot parse {line!r}: {exc}") from exc
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"{source}: {line!r} is not an exact pin (write name==version)"
        )
        name = canonicalize_name(req.name)
        assert name not in pins, f"{source}: {req.name} is listed twice"
        pins[name] = specs[0].version
    return pins


def _pins_of(path: Path) -> dict[str, str]:
    return _parse_pin_lines(path.read_text().splitlines(), str(path.relative_to(ROOT)))


def _diff(expected: dict[str, str], actual: dict[str, str]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = sorted(
        f"{n} ({expected[n]} != {actual[n]})"
        for n in set(expected) & set(actual)
        if expected[n] != actual[n]
    )
    return f"missing: {missing}; extra: {extra}; different versions: {differ}"


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    result = _pins_of(ROOT / "requirements.txt")
    assert result, "requirements.txt lists no pins"
    return result


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def test_environment_yml_matches_requirements(pins):
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "otkit"
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert "pip" in deps
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `pip:` section"
    env_pins = _parse_pin_lines(pip_sections[0], "environment.yml")
    assert env_pins == pins, "environment.yml pip list differs from requirements.txt: " + _diff(
        pins, env_pins
    )


def test_binder_requirements_match(pins):
    binder_pins = _pins_of(ROOT / "binder" / "requirements.txt")
    assert binder_pins == pins, "binder/requirements.txt differs from requirements.txt: " + _diff(
        pins, binder_pins
    )


def test_binder_runtime_and_postbuild():
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post = ROOT / "binder" / "postBuild"
    text = post.read_text()
    assert os.access(post, os.X_OK), "binder/postBuild must be executable"
    assert "set -e" in text
    assert "pip install -e . --no-deps" in text
    assert "ipykernel install" in text


def test_torch_pinned_exactly(pins):
    assert pins.get("torch") == "2.13.0", (
        f"torch must be pinned to 2.13.0 (the CPU wheel on these machines), got {pins.get('torch')}"
    )


@pytest.mark.parametrize(
    "name", sorted(_pins_of(ROOT / "requirements.txt")) or ["<none>"]
)
def test_pinned_package_installed_at_pinned_version(name, pins):
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name}=={pins[name]} is pinned but not installed here (run `make setup`)")
    # `==2.13.0` accepts local builds such as 2.13.0+cpu, exactly as pip does.
    req = Requirement(f"{name}=={pins[name]}")
    assert req.specifier.contains(installed, prereleases=True), (
        f"{name}: installed {installed}, pinned {pins[name]} (run `make setup`)"
    )


@pytest.mark.parametrize(
    "module",
    ["torch", "numpy", "scipy", "ot", "geomloss", "tqdm", "yaml", "sklearn",
     "ipywidgets", "plotly", "anywidget", "papermill", "nbformat", "nbclient"],
)
def test_core_modules_importable(module):
    __import__(module)


def _requirements(items) -> list[Requirement]:
    return [Requirement(s) for s in items]


def test_pyproject_core_dependencies_are_pinned(pyproject, pins):
    deps = _requirements(pyproject["project"]["dependencies"])
    names = {canonicalize_name(r.name) for r in deps}
    assert {"torch", "numpy", "scipy", "pot", "geomloss", "tqdm"} <= names
    not_pinned = sorted(r.name for r in deps if canonicalize_name(r.name) not in pins)
    assert not not_pinned, f"pyproject dependencies missing from requirements.txt: {not_pinned}"
    rejected = sorted(
        f"{r.name}{r.specifier} rejects pin {pins[canonicalize_name(r.name)]}"
        for r in deps
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    )
    assert not rejected, f"pyproject ranges reject the pins: {rejected}"


def test_pyproject_torch_is_never_bare(pyproject):
    for group in [pyproject["project"]["dependencies"],
                  *pyproject["project"].get("optional-dependencies", {}).values()]:
        for r in _requirements(group):
            if canonicalize_name(r.name) == "torch":
                assert str(r.specifier), "a bare `torch` requirement pulls a multi-GB CUDA build"


@pytest.mark.parametrize("extra", ["notebooks", "test"])
def test_pyproject_extras_are_pinned(pyproject, pins, extra):
    deps = _requirements(pyproject["project"]["optional-dependencies"][extra])
    not_pinned = sorted(r.name for r in deps if canonicalize_name(r.name) not in pins)
    assert not not_pinned, f"extra [{extra}] names packages missing from requirements.txt: {not_pinned}"
    rejected = sorted(
        f"{r.name}{r.specifier}"
        for r in deps
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    )
    assert not rejected, f"extra [{extra}] ranges reject the pins: {rejected}"


def test_pyproject_bench_extra_matches_bench_requirements(pyproject, pins):
    bench_pins = _pins_of(ROOT / "requirements-bench.txt")
    deps = _requirements(pyproject["project"]["optional-dependencies"]["bench"])
    assert {canonicalize_name(r.name) for r in deps} <= set(bench_pins)
    for r in deps:
        assert r.specifier.contains(bench_pins[canonicalize_name(r.name)], prereleases=True), r
    # benchmark references never leak into the core requirements
    leaked = sorted(set(bench_pins) & set(pins))
    assert not leaked, f"benchmark-only packages in requirements.txt: {leaked}"


def test_pytest_markers_registered(pyproject):
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    names = {m.split(":", 1)[0].strip() for m in markers}
    assert {"slow", "notebooks", "browser", "cuda", "bench"} <= names
