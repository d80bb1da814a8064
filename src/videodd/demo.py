"""``make demo`` / ``videodd demo``: the main job end to end on the embedded benchmark.

prepare synth-actions -> distil random, herding and DM (started from the herding clips) ->
evaluate each (with the random-real and full-data references) under the ``cpu`` protocol -> print a markdown table.
"""

from __future__ import annotations

import time
from pathlib import Path

from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.evaluate import get_protocol
from videodd.io import write_json
from videodd.pipeline import run_methods
from videodd.report import markdown_table

# The demo's DM = configs/synth-actions/dm-ipc1.yaml (tests/test_configs.py checks it): started from the
# herding clips with a small step, both chosen on the validation split (benchmarks/RESULTS.md, sections 2d
# and 2f)
DEMO_DM = {"iterations": 200, "batch_real": 64, "lr": 10.0, "momentum": 0.5, "model": "convnet3d-s", "init": "herding"}


def run_demo(out: Path, *, iterations: int | None = None, runs: int = 3, ipc: int = 1, device: str = "cpu",
             progress: bool = True) -> str:
    """Run the demo in ``out`` and return the markdown table it printed."""
    start = time.perf_counter()
    print("prepare synth-actions (10 classes, 8 frames, 32x32)")
    train, test = synth_actions_stores(out / "data", SynthActionsConfig())
    print(f"    train {len(train)} clips, test {len(test)} clips, {train.nbytes / 2**20:.1f} MiB of uint8 clips")
    protocol = get_protocol("cpu").with_runs(runs)
    dm = {**DEMO_DM, "ipc": ipc, **({"iterations": iterations} if iterations is not None else {})}
    # herding is DM's initialisation: its row shows what the DM optimisation itself adds
    methods = [("random", {"ipc": ipc}), ("herding", {"ipc": ipc}), ("dm", dm)]
    method_runs, rows = run_methods(train, test, methods, protocol, out, device=device, progress=progress, say=print)
    table = markdown_table(rows)
    elapsed = time.perf_counter() - start
    print(f"\nresults on synth-actions, protocol {protocol.name} v{protocol.version}: {protocol.description}\n")
    print(table)
    print(f"\ndemo wall time {elapsed:.0f} s; outputs in {out}/")
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    write_json(out / "results.json", {"wall_seconds": elapsed, "reports": [r.report.to_json() for r in method_runs]})
    return table
