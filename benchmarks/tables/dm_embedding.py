"""What the DM embedding change does to DM's step: the published embedding against the old one, same tensors.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.dm_embedding --out benchmarks/results/17-parity/dm_embedding.json

For each scale (ConvNet3D at 16x112x112 and 8x64x64, ``convnet3d-s`` at 8x32x32), one freshly initialised
network, real clips and synthetic videos (uniform noise in the normalized range, seeded): the DM loss and its
gradient on the synthetic pixels with ``embed_from="features"`` (the trunk's output flattened: the official
embedding, now the default) and with ``embed_from="head"`` (the head's pooled map, what videodd matched
before). The ratio of gradient norms says how the pixel step at a given lr changes; the cosine, whether it
points the same way. Nothing here is trained or evaluated.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import machine_info
from videodd.io import write_json
from videodd.models import create_model
from videodd.objectives.dm import dm_loss

SCALES = {  # name: (model, (C, T, H, W), classes, real clips per class)
    "convnet3d 16x112x112": ("convnet3d", (3, 16, 112, 112), 3, 8),
    "convnet3d 8x64x64": ("convnet3d", (3, 8, 64, 64), 5, 16),
    "convnet3d-s 8x32x32": ("convnet3d-s", (3, 8, 32, 32), 10, 64),
}


def measure(model: str, shape: tuple[int, ...], classes: int, per_class: int, seed: int) -> dict[str, float]:
    """DM loss and pixel gradient under both embeddings, for one network and one set of tensors."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(classes * per_class, *shape, generator=gen) * 4 - 2  # (K*B, C, T, H, W)
    real_lab = torch.arange(classes).repeat_interleave(per_class)
    syn0 = torch.rand(classes, *shape, generator=gen) * 4 - 2  # (K, C, T, H, W): IPC 1
    syn_lab = torch.arange(classes)
    torch.manual_seed(seed)
    features = create_model(model, classes, shape)
    head = create_model(model, classes, shape, embed_from="head")
    head.load_state_dict(features.state_dict())  # the same network, two embeddings
    out: dict[str, float] = {}
    grads = {}
    for name, net in (("features", features), ("head", head)):
        net.train().requires_grad_(False)
        syn = syn0.clone().requires_grad_(True)
        with torch.no_grad():
            real_feat = net.embed(real)
        loss = dm_loss(real_feat, real_lab, net.embed(syn), syn_lab, classes)
        loss.backward()
        grads[name] = syn.grad.flatten()
        out[f"loss_{name}"] = float(loss.detach())
        out[f"dim_{name}"] = int(real_feat.shape[1])
        out[f"grad_norm_{name}"] = float(grads[name].norm())
    out["grad_norm_ratio_head_over_features"] = out["grad_norm_head"] / out["grad_norm_features"]
    out["grad_cosine"] = float(torch.nn.functional.cosine_similarity(grads["features"], grads["head"], dim=0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {**machine_info(), "seeds": seeds, "scales": {}}
    for name, (model, shape, classes, per_class) in SCALES.items():
        start = time.perf_counter()
        cells = [measure(model, shape, classes, per_class, s) for s in seeds]
        results["scales"][name] = {"classes": classes, "real_per_class": per_class, "per_seed": cells,
                                   "seconds": time.perf_counter() - start}
        ratio = [c["grad_norm_ratio_head_over_features"] for c in cells]
        cos = [c["grad_cosine"] for c in cells]
        print(f"{name}: dims {cells[0]['dim_features']} / {cells[0]['dim_head']}; head/features gradient norm "
              f"{min(ratio):.3f}-{max(ratio):.3f}, cosine {min(cos):.2f}-{max(cos):.2f}", flush=True)
    write_json(Path(args.out), results)


if __name__ == "__main__":
    main()
