"""What every parity component shares: the official checkout, imported without its heavy dependencies,
and the fixture file format.

The official code is never part of videodd: the user fetches it (``git clone`` of
``yuz1wan/video_distillation``) and passes the folder. Its modules import torchvision, scipy and wandb
at the top, although the functions compared here need none of them on tensors; :class:`OfficialCode`
puts minimal stand-ins for those imports into ``sys.modules`` (only what the compared code calls:
``transforms.functional.hflip`` on PIL images, ``ToTensor``, ``Normalize``), so the comparison runs in
videodd's own environment.

A fixture is ``tests/fixtures/parity/NAME.safetensors``: tensors (inputs, weights, the official
outputs) and string metadata: the official repository, its commit, the component, and the official
file and lines that produced each output.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

REPO = "yuz1wan/video_distillation"
EXPECTED_COMMIT = "5871dc5b05811cc70e98cde8de2af9e2480a10c4"
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "parity"


def _install_stand_ins() -> None:
    """Stand-ins for the official modules' top-level imports that the compared code does not use."""
    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        functional = types.ModuleType("torchvision.transforms.functional")

        def hflip(img: Any) -> Any:  # PIL image, as the official loaders call it
            from PIL import Image

            return img.transpose(Image.FLIP_LEFT_RIGHT)

        functional.hflip = hflip
        transforms.functional = functional

        class Compose:
            def __init__(self, ts: list) -> None:
                self.ts = ts

            def __call__(self, x: Any) -> Any:
                for t in self.ts:
                    x = t(x)
                return x

        class ToTensor:
            def __call__(self, img: Any) -> torch.Tensor:  # HWC uint8 -> CHW float in [0, 1]
                return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

        class Normalize:
            def __init__(self, mean: list[float], std: list[float]) -> None:
                self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

            def __call__(self, x: torch.Tensor) -> torch.Tensor:
                return (x - self.mean) / self.std

        def _unused(name: str) -> type:
            def init(self: Any, *a: Any, **k: Any) -> None:
                raise RuntimeError(f"torchvision.transforms.{name} stand-in: not used by the compared code")

            return type(name, (), {"__init__": init})

        transforms.Compose, transforms.ToTensor, transforms.Normalize = Compose, ToTensor, Normalize
        for name in ("Resize", "RandomCrop", "CenterCrop"):
            setattr(transforms, name, _unused(name))
        tv.transforms = transforms
        tv.datasets = types.ModuleType("torchvision.datasets")
        tv.utils = types.ModuleType("torchvision.utils")
        sys.modules.update({"torchvision": tv, "torchvision.transforms": transforms,
                            "torchvision.transforms.functional": functional, "torchvision.datasets": tv.datasets,
                            "torchvision.utils": tv.utils})
    for name in ("scipy", "scipy.ndimage", "scipy.ndimage.interpolation"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["scipy.ndimage.interpolation"].rotate = None  # only DC's augmentation uses it
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))


@dataclass
class OfficialCode:
    """A checkout of the official repository, importable by module name (``networks``, ``utils``, ...)."""

    root: Path
    commit: str

    @classmethod
    def open(cls, root: str | Path, *, allow_other_commit: bool = False) -> OfficialCode:
        root = Path(root).resolve()
        if not (root / "networks.py").is_file():
            raise SystemExit(f"{root}: not a checkout of {REPO} (no networks.py)")
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True,
                                    text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = (root / "COMMIT").read_text().strip() if (root / "COMMIT").is_file() else "unknown"
        if commit != EXPECTED_COMMIT and not allow_other_commit:
            raise SystemExit(f"{root}: at commit {commit}, the fixtures record {EXPECTED_COMMIT} "
                             "(check it out, or pass --allow-other-commit)")
        return cls(root, commit)

    def module(self, name: str) -> types.ModuleType:
        """Import an official module (``networks``, ``utils``, ``distill_utils.dataset``, ``reparam_module``)."""
        _install_stand_ins()
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        return importlib.import_module(name)


@contextmanager
def torch_seed(seed: int):
    """Seed torch, numpy and random for a block (the official code draws from the global RNGs)."""
    import random

    state = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


def save_fixture(name: str, tensors: dict[str, torch.Tensor], official: OfficialCode, *, sources: dict[str, str],
                 out_dir: Path = FIXTURES, **meta: Any) -> Path:
    """Write ``out_dir/NAME.safetensors``: ``tensors`` plus metadata (official repo and commit, and for each
    output the official file and lines that produced it, ``sources``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    metadata = {"official_repo": REPO, "official_commit": official.commit, "component": name,
                "sources": json.dumps(sources), "meta": json.dumps(meta),
                "made_by": "python -m benchmarks.parity.make_fixtures --official DIR"}
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def parity_helpers() -> types.ModuleType:
    """``tests/parity.py``: the seeded weights and inputs (``seeded_state``, ``seeded_uniform``, ``seeded_uint8``,
    ``checksum``) that the tests regenerate, imported from the file so that both sides draw the same tensors."""
    import importlib.util

    path = FIXTURES.parents[1] / "parity.py"
    if "videodd_parity_helpers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("videodd_parity_helpers", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["videodd_parity_helpers"] = mod
    return sys.modules["videodd_parity_helpers"]
