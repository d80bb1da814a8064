"""The fixed evaluation protocol: train fresh models on a distilled set, test on a ClipStore.

``evaluate(distilled, test_store, protocol) -> EvalReport``. Nothing here looks at test accuracy to choose
anything, with one labelled exception: :func:`select_on_test` (``videodd evaluate RUN --test-selected``) picks
the best of a run's snapshots by test accuracy, as the published code reports its number, and its figure is
always labelled :data:`TEST_SELECTED_LABEL`, beside the final set's. The protocols and their runs are in
:mod:`videodd.protocol`, the references a set is compared with in :mod:`videodd.references`; their public names
are importable from here too.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from videodd._version import __version__
from videodd.augment import resolve_eval_augment
from videodd.config import to_dict
from videodd.data.clips import resident
from videodd.data.store import ClipStore
from videodd.distilled import DistilledSet
from videodd.guards import VideoddWarning
from videodd.io import write_json
from videodd.protocol import (
    PROTOCOLS,
    EvalProtocol,
    RunResult,
    Summary,
    describe_test,
    get_protocol,
    run_protocol,
    summary_from_json,
)
from videodd.references import (
    BYTES_REFERENCE,
    H264_REFERENCE,
    REFERENCES,
    ReferenceSetup,
    check_references,
    equal_bytes_reference,
    full_data_reference,
    h264_reference,
    random_real_reference,
    uint8_ipc_for,
)
from videodd.train import TensorData

__all__ = ["PROTOCOLS", "REFERENCES", "TEST_SELECTED_LABEL", "EvalProtocol", "EvalReport", "ReferenceSetup",
           "RunResult", "Summary", "check_references", "evaluate", "full_data_reference", "get_protocol",
           "random_real_reference", "run_protocol", "run_snapshots", "select_on_test"]

#: the label of every figure chosen by test accuracy (``EvalReport.test_selected``), wherever it is shown
TEST_SELECTED_LABEL = "test-selected, as published: optimistic"


@dataclass
class EvalReport:
    """Everything an evaluation measured; ``to_markdown()`` for people, ``save()`` for machines."""

    method: str
    ipc: int
    dataset: str
    dataset_fingerprint: str
    model: str
    protocol: dict[str, Any]
    result: Summary
    classes: list[str]
    storage_bytes: int
    storage_by_tensor: dict[str, int]
    full_train_bytes: int
    wall_seconds: float
    peak_memory_bytes: int
    peak_memory_kind: str
    references: dict[str, Summary] = field(default_factory=dict)
    library_version: str = __version__
    # DistilledSet.storage_detail().to_json(): pixel-equivalent IPC, the kind's parts and notes
    storage_detail: dict[str, Any] = field(default_factory=dict)
    label_loss: str = "ce"  # "mse" when the set's labels are regression targets (FRePo's learned labels)
    equal_storage_ipc: int | None = None  # the pixel IPC whose bytes the set was built to fit
    learned_lr_used: float | None = None  # the set's learned lr, when evaluation trained with it
    set_warnings: list[str] = field(default_factory=list)  # what the distillation run warned about
    tuning: dict[str, Any] | None = None  # how --tune chose the set's settings (the manifest's info["tuning"])
    # the method's own evaluation augmentation (manifest.eval_augment): row name -> its runs, beside `result`
    augmented: dict[str, Summary] = field(default_factory=dict)
    test_clips: str = ""  # the protocol's test clips in words (protocol.describe_test)
    # the best of the run's snapshots by TEST accuracy (select_on_test), labelled TEST_SELECTED_LABEL; `result`
    # stays the final set's
    test_selected: dict[str, Any] | None = None

    @property
    def test_selected_summary(self) -> Summary | None:
        """The runs of the test-selected snapshot (:data:`TEST_SELECTED_LABEL`), or None."""
        return None if self.test_selected is None else summary_from_json(self.test_selected["result"])

    @property
    def test_selected_name(self) -> str:
        """The row name of the test-selected figure: ``METHOD [test-selected, as published: optimistic: iter-N]``."""
        chosen = self.test_selected["chosen"] if self.test_selected else ""
        return f"{self.method} [{TEST_SELECTED_LABEL}: {chosen}]"

    @property
    def compression_ratio(self) -> float:
        """Full training set bytes (uint8 clips) over the bytes the method keeps."""
        return self.full_train_bytes / max(self.storage_bytes, 1)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["compression_ratio"] = self.compression_ratio
        data["per_class_mean"] = dict(zip(self.classes, self.result.per_class_mean, strict=True))
        return data

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalReport:
        """The report :meth:`to_json` wrote (``report.json``, a demo's ``results.json`` entry)."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in names}
        fields["result"] = summary_from_json(data["result"])
        fields["references"] = {k: summary_from_json(v) for k, v in data.get("references", {}).items()}
        fields["augmented"] = {k: summary_from_json(v) for k, v in data.get("augmented", {}).items()}
        return cls(**fields)

    @property
    def all_in_bytes(self) -> int:
        """The stored bytes plus what is needed to use the set but lives outside it (a latent set's decoder)."""
        return self.storage_bytes + int(self.storage_detail.get("external_bytes", 0) or 0)

    def to_markdown(self) -> str:
        lines = [
            f"### {self.method} on {self.dataset} (IPC {self.ipc}, model {self.model}, protocol "
            f"{self.protocol['name']} v{self.protocol['version']}, precision {self.protocol.get('precision', 'fp32')})",
            "",
            "| set | top-1 (%) | top-5 (%) | runs |",
            "|---|---|---|---|",
            _row(self.method, self.result),
            *(_row(name, summary) for name, summary in self.augmented.items()),
        ]
        selected = self.test_selected_summary
        if selected is not None:
            lines.append(_row(self.test_selected_name, selected))
        for name, summary in self.references.items():
            lines.append(_row(name, summary))
        lines += [
            "",
            f"storage: {self.storage_bytes:,} bytes (compression x{self.compression_ratio:,.1f} vs the "
            f"{self.full_train_bytes:,}-byte training set); wall time {self.wall_seconds:.1f} s; "
            f"peak memory {self.peak_memory_bytes / 2**20:,.0f} MiB ({self.peak_memory_kind})",
        ]
        if self.test_selected is not None:
            t = self.test_selected
            lines.append(f"**{TEST_SELECTED_LABEL}**: {100 * t['top1_mean']:.1f} ± {100 * t['top1_std']:.1f} "
                         f"({t['chosen']}, the best of {len(t['candidates'])} sets of the run by test accuracy, as "
                         f"the published code reports); the final set, nothing chosen on test: "
                         f"{self.result.fmt()}")
        if self.test_clips:
            lines.append(f"test clips: {self.test_clips}")
        lines += list(self.storage_detail.get("notes", []))
        if self.label_loss != "ce":
            lines.append(f"trained on the set's learned labels with the {self.label_loss} label loss")
        lr = self.protocol["train"]["lr"]
        lines.append(f"trained with the set's learned lr {self.learned_lr_used:g}" if self.learned_lr_used is not None
                     else f"trained with the protocol's lr {lr:g}")
        for name, summary in [(self.method, self.result), *self.references.items()]:
            if summary.collapsed:
                lines.append(f"**{name}: {summary.collapsed} of {len(summary.runs)} runs collapsed** (the model "
                             "predicted one class for every test clip; those runs are in the mean above)")
        lines += [f"warning from distillation: {w}" for w in self.set_warnings]
        if self.tuning:
            t = self.tuning
            tried = "; ".join(f"{r['key'] or '(as given)'}: " + ("diverged" if r.get("diverged") else
                                                                   f"{100 * r['val_top1_mean']:.1f} %")
                              for r in t["rows"])
            lines.append(f"settings chosen on a validation split of the training store ({t['split']['fit_clips']} "
                         f"clips to fit, {t['split']['val_clips']} to validate; protocol {t['protocol']}): "
                         f"**{t['chosen'] or '(as given)'}**, among {tried}")
        return "\n".join(lines)


def _row(name: str, s: Summary) -> str:
    return f"| {name} | {s.fmt()} | {100 * s.top5_mean:.1f} ± {100 * s.top5_std:.1f} | {len(s.runs)} |"


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda max allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process peak RSS"


def _warn_on_expert_pipeline(distilled: DistilledSet, protocol: EvalProtocol) -> None:
    """Warn when an MTT set's experts saw their batches otherwise than this protocol trains: the set and its
    learned lr were matched to the experts' input (z-scored or not, in which normalization)."""
    pipeline = distilled.manifest.info.get("mtt_experts_pipeline")
    if not isinstance(pipeline, dict):
        return
    theirs = (bool(pipeline.get("zscore")), pipeline.get("renormalize"))
    ours = (protocol.train.batch_zscore, protocol.train.renormalize)
    if theirs != ours:
        def say(zscore: bool, renorm: str | None) -> str:
            return f"{'z-scored' if zscore else 'not z-scored'}, {renorm or 'the store'} normalization"

        warnings.warn(f"the set's MTT experts trained on batches {say(*theirs)}; protocol {protocol.name} trains "
                      f"on batches {say(*ours)}: its learned lr and pixels were matched to the experts' input "
                      f"(the published experts go with --protocol published)", VideoddWarning, stacklevel=3)


def evaluate(
    distilled: DistilledSet,
    test_store: ClipStore,
    protocol: EvalProtocol | str = "default",
    *,
    train_store: ClipStore | None = None,
    references: tuple[str, ...] = REFERENCES,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> EvalReport:
    """Evaluate ``distilled`` under ``protocol`` on ``test_store``.

    Args:
        train_store: needed for the references and the compression ratio.
        references: which references to compute (:data:`~videodd.references.REFERENCES`): ``random`` (random
            real clips at the set's IPC), ``bytes`` (random real uint8 clips in the set's bytes), ``h264``
            (random real clips as H.264 in the set's bytes), ``full`` (the whole training set).
        cache_dir: where reference results are cached between calls (they do not depend on the method).
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    check_references(references)
    distilled.check_compatible(test_store)
    fewest = int(test_store.class_counts().min())
    if fewest < 5:
        warnings.warn(f"{test_store.root}: a class has only {fewest} test clip(s): one clip moves its accuracy by "
                      f"{100 / fewest:.0f} points", VideoddWarning, stacklevel=2)
    if test_store.num_classes <= 5:
        warnings.warn(f"{test_store.root}: {test_store.num_classes} classes: top-5 accuracy is 100 % by construction",
                      VideoddWarning, stacklevel=2)
    _warn_on_expert_pipeline(distilled, protocol)
    device = torch.device(device)
    start = time.perf_counter()
    mat = distilled.materialize(device=device)  # the set lives on the device: no copy per step
    test_store = resident(test_store, device)  # on a GPU: gathered there, not read and copied per batch
    train_store = resident(train_store, device) if train_store is not None else None
    train_cfg = protocol.train
    learned_lr = distilled.manifest.learned_lr if protocol.use_learned_lr else None
    if learned_lr is not None:
        train_cfg = dataclasses.replace(train_cfg, lr=float(learned_lr))
    # a set whose labels are regression targets (FRePo's learned labels) says so in its manifest;
    # it trains with those labels under the mse label loss, as published
    label_loss = distilled.manifest.label_loss
    result = run_protocol(TensorData(mat.videos, mat.labels), test_store, protocol, train_cfg,
                          seeds=[seed * 1000 + r for r in range(protocol.runs)], device=device,
                          progress=progress, desc=distilled.manifest.method, label_loss=label_loss)
    augmented: dict[str, Summary] = {}
    if distilled.manifest.eval_augment is not None:
        # the method's own evaluation augmentation: a second row, beside (never instead of) the protocol's
        suffix, augment = resolve_eval_augment(distilled.manifest.eval_augment)
        augmented[f"{distilled.manifest.method} {suffix}"] = run_protocol(
            TensorData(mat.videos, mat.labels), test_store, protocol, train_cfg,
            seeds=[seed * 1000 + r for r in range(protocol.runs)], device=device, progress=progress,
            desc=f"{distilled.manifest.method} {suffix}", label_loss=label_loss, augment=augment)
    refs: dict[str, Summary] = {}
    if train_store is not None:
        distilled.check_compatible(train_store)
        setup = ReferenceSetup(train_store, test_store, protocol, seed=seed, device=device, progress=progress,
                               cache_dir=cache_dir)
        if "random" in references:
            refs[f"random real IPC {distilled.ipc}"] = random_real_reference(setup, distilled.ipc)
            if distilled.manifest.eval_augment is not None:  # the augmented row's fair comparison
                suffix = resolve_eval_augment(distilled.manifest.eval_augment)[0]
                refs[f"random real IPC {distilled.ipc} {suffix}"] = random_real_reference(
                    setup, distilled.ipc, augment=distilled.manifest.eval_augment)
            # a set made to fit the bytes of pixel IPC K (latent sets: --match-ipc K) is also compared
            # with random real clips at IPC K: the same storage budget
            match = distilled.manifest.equal_storage_ipc
            if match is not None and match != distilled.ipc:
                refs[f"random real IPC {match} (same storage)"] = random_real_reference(setup, match)
        # the set's stored bytes (labels aside) spent on real clips instead: uint8, and H.264
        detail = distilled.storage_detail()
        budget = detail.total_bytes - detail.label_bytes
        if "bytes" in references and uint8_ipc_for(budget, train_store) != distilled.ipc:
            same = equal_bytes_reference(setup, budget)
            if same is not None:
                refs[BYTES_REFERENCE] = same
        if "h264" in references:
            coded = h264_reference(setup, budget)
            if coded is not None:
                refs[H264_REFERENCE] = coded
        if "full" in references:
            refs["full training set"] = full_data_reference(setup)
    storage = distilled.storage_bytes()
    peak, kind = _peak_memory(device)
    return EvalReport(
        method=distilled.manifest.method,
        ipc=distilled.ipc,
        dataset=distilled.manifest.dataset,
        dataset_fingerprint=distilled.manifest.dataset_fingerprint,
        model=protocol.model_for(test_store.video_shape),
        protocol=to_dict(protocol),
        result=result,
        classes=list(test_store.classes),
        storage_bytes=storage["total"],
        storage_by_tensor={k: v for k, v in storage.items() if k != "total"},
        full_train_bytes=train_store.nbytes if train_store is not None else 0,
        wall_seconds=time.perf_counter() - start,
        peak_memory_bytes=peak,
        peak_memory_kind=kind,
        references=refs,
        storage_detail=distilled.storage_detail().to_json(),
        label_loss=label_loss,
        equal_storage_ipc=distilled.manifest.equal_storage_ipc,
        learned_lr_used=learned_lr,
        set_warnings=list(distilled.manifest.warnings),
        tuning=distilled.manifest.info.get("tuning"),
        augmented=augmented,
        test_clips=describe_test(protocol, test_store),
    )


# -- chosen on test, labelled: the published number ----------------------------------------------------
def run_snapshots(run_dir: str | Path) -> list[tuple[str, int, Path]]:
    """``(name, iteration, path)`` of a run folder's snapshots (``RUN/snapshots/iter-NNNNNN.safetensors``, written
    by ``videodd distill --snapshots``), by iteration."""
    found = []
    for path in Path(run_dir, "snapshots").glob("iter-*.safetensors"):
        match = re.fullmatch(r"iter-(\d+)\.safetensors", path.name)
        if match:
            found.append((path.stem, int(match.group(1)), path))
    return sorted(found, key=lambda f: f[1])


def select_on_test(final: Summary, snapshots: list[tuple[str, int, Summary]]) -> dict[str, Any]:
    """The published number: the best mean top-1 among the run's snapshots and its final set, chosen by TEST
    accuracy (the official ``distill_baseline.py`` keeps ``best_acc`` over its evaluated checkpoints, lines
    170-171 and 313-314: the first to reach the maximum wins, as its strict ``>``).

    Returns ``EvalReport.test_selected``: ``label`` (:data:`TEST_SELECTED_LABEL`), ``chosen`` (a snapshot's name or
    ``final``), ``iteration``, ``top1_mean``/``top1_std``/``top5_mean``/``top5_std``, ``result`` (its runs, as
    ``EvalReport.result``), ``candidates`` (every set's name, iteration and top-1) and the final set's top-1.
    It is optimistic by construction (the test set chose it) and never replaces the final set's figure.
    """
    candidates = [*((name, it, s) for name, it, s in snapshots), ("final", None, final)]
    name, iteration, best = candidates[0]
    for cand in candidates[1:]:
        if cand[2].top1_mean > best.top1_mean:
            name, iteration, best = cand
    return {
        "label": TEST_SELECTED_LABEL, "chosen": name, "iteration": iteration,
        "top1_mean": best.top1_mean, "top1_std": best.top1_std, "top5_mean": best.top5_mean,
        "top5_std": best.top5_std, "result": dataclasses.asdict(best),
        "candidates": [{"name": n, "iteration": i, "top1_mean": s.top1_mean, "top1_std": s.top1_std}
                       for n, i, s in candidates],
        "final_top1_mean": final.top1_mean, "final_top1_std": final.top1_std,
    }
