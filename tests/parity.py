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


# -- weights and inputs regenerated from a seed (the fixture scripts import these through
# benchmarks.parity.common.parity_helpers, so both sides draw the same tensors) -----------------------

def seeded_uniform(shape: tuple[int, ...], seed: int, bound: float = 1.0) -> torch.Tensor:
    """float32 ``shape`` uniform in ``[-bound, bound)``: ``torch.rand`` from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound


def seeded_uint8(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """uint8 ``shape`` uniform in ``[0, 255]``: ``torch.randint`` from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)


def seeded_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """New values for every floating tensor of ``model.state_dict()``, drawn in that order from ONE
    ``torch.Generator().manual_seed(seed)`` with ``torch.rand``:

    - tensors of 2+ dims: uniform in ``±sqrt(3 / fan_in)`` (variance ``1 / fan_in``), ``fan_in = prod(shape[1:])``;
    - 1-D tensors named ``*weight`` (norm scales): ``1 +`` uniform in ``±0.1``;
    - other 1-D tensors (biases, norm shifts): uniform in ``±0.1``.

    The order is videodd's; a fixture script maps the names to the official model's.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, ref in model.state_dict().items():
        if not ref.is_floating_point():
            out[name] = ref.clone()  # counters (BatchNorm's num_batches_tracked) stay as they are
            continue
        u = torch.rand(tuple(ref.shape), generator=gen, dtype=torch.float32) * 2 - 1  # uniform in [-1, 1)
        if ref.ndim >= 2:
            fan_in = ref[0].numel()
            out[name] = u * (3.0 / fan_in) ** 0.5
        else:
            out[name] = 1 + 0.1 * u if name.endswith("weight") else 0.1 * u
    return out


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names (sorted) and float32 bytes of ``tensors``: the fixture records it so that a
    test knows it regenerated the same weights and inputs."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def tensor_summary(t: torch.Tensor, dir_seed: int, sample_seed: int, samples: int) -> dict[str, torch.Tensor]:
    """What a fixture keeps of a tensor too large to store (a gradient on clips): ``norm`` (L2), ``dot`` (with
    ``seeded_uniform(t.shape, dir_seed)``, both in float64) and ``sample`` (the values at ``samples`` flat
    positions, the first of ``torch.randperm`` from ``torch.Generator().manual_seed(sample_seed)``)."""
    flat = t.detach().reshape(-1)
    idx = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(sample_seed))[:samples]
    direction = seeded_uniform(tuple(t.shape), dir_seed).reshape(-1)
    return {"norm": flat.double().norm().float().reshape(1),
            "dot": (flat.double() * direction.double()).sum().float().reshape(1),
            "sample": flat[idx].clone()}
