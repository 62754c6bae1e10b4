"""OTT-JAX's outputs on fixed inputs, stored by tests/fixtures/ott/generate.py (with provenance)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch

PATH = Path(__file__).parent / "fixtures" / "ott" / "ott_jax_references.json"


@cache
def ott_references() -> dict:
    return json.loads(PATH.read_text())


def tensor(values) -> torch.Tensor:
    """A stored list as a float64 tensor."""
    return torch.tensor(values, dtype=torch.float64)
