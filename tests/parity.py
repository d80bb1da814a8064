"""Read the parity fixtures made by ``python -m benchmarks.parity.make_fixtures --official DIR``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
OFFICIAL_COMMIT = "5871dc5b05811cc70e98cde8de2af9e2480a10c4"


def load_fixture(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of ``tests/fixtures/parity/NAME.safetensors`` (``meta`` decoded from JSON)."""
    path = FIXTURES / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        metadata = dict(f.metadata())
    assert metadata["official_commit"] == OFFICIAL_COMMIT, f"{path}: made from another official commit"
    metadata["meta"] = json.loads(metadata.get("meta", "{}"))
    metadata["sources"] = json.loads(metadata.get("sources", "{}"))
    return tensors, metadata
