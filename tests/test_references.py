"""The references at the set's bytes: random real uint8 clips, and random real clips kept as H.264."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from functools import partial
from pathlib import Path

import torch

from videodd.data.media import decode_video, encode_video
from videodd.distill import distill, resolve_config
from videodd.evaluate import evaluate, get_protocol
from videodd.protocol import RunResult, Summary
from videodd.references import (
    BYTES_REFERENCE,
    H264_REFERENCE,
    ReferenceSetup,
    _cached,
    clip_bytes,
    encode_selection,
    h264_reference,
    h264_selections,
    uint8_ipc_for,
)


def test_uint8_clips_in_a_float32_budget(tiny_stores):
    train, _ = tiny_stores  # 3 classes x 6 clips of (3, 4, 32, 32)
    one = clip_bytes(train)
    assert one == 3 * 4 * 32 * 32
    float32_ipc1 = 4 * one * train.num_classes  # a float32 set of IPC 1
    assert uint8_ipc_for(float32_ipc1, train) == 4
    assert uint8_ipc_for(float32_ipc1 - 1, train) == 3
    assert uint8_ipc_for(one, train) == 0  # not one clip per class
    assert uint8_ipc_for(100 * float32_ipc1, train) == 6  # no more clips than the smallest class has


def test_h264_selection_is_the_best_crf_that_fits(tiny_stores):
    train, _ = tiny_stores
    idx = [0, 6, 12]
    raw = train.raw(idx).numpy()
    budget = sum(len(encode_video(c, crf=30, container="h264")) for c in raw) + 5
    chosen = encode_selection(train, idx, budget)
    assert chosen is not None and chosen.bytes <= budget
    # one CRF lower (better quality) would not fit: the lowest that does
    assert chosen.crf == 0 or sum(len(encode_video(c, crf=chosen.crf - 1, container="h264")) for c in raw) > budget
    back = decode_video(chosen.streams[0], "h264")
    assert back.shape == raw[0].shape
    assert encode_selection(train, idx, 10) is None  # nothing fits in 10 bytes


def test_h264_reference_trains_on_decoded_clips_within_budget(tiny_stores, tmp_path):
    train, test = tiny_stores
    protocol = get_protocol("cpu").with_runs(2).with_epochs(3)
    budget = clip_bytes(train) * train.num_classes  # one uint8 clip per class: 4 H.264 clips per class
    chosen = h264_selections(train, budget, runs=2, seed=0)
    assert chosen is not None and all(s.bytes <= budget for s in chosen)
    assert chosen[0].indices != chosen[1].indices  # each run its own random clips
    setup = ReferenceSetup(train, test, protocol, cache_dir=tmp_path)
    summary = h264_reference(setup, budget)
    assert summary is not None and len(summary.runs) == 2
    assert summary.info["ipc"] == 4 and all(b <= budget for b in summary.info["bytes"])
    again = h264_reference(setup, budget)  # from the cache
    assert [r.top1 for r in again.runs] == [r.top1 for r in summary.runs] and again.info == summary.info


def test_evaluate_reports_the_byte_references_and_all_in_bytes(tiny_stores, tmp_path):
    train, test = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 2, "batch_real": 4})
    dset = distill(train, cfg, tmp_path / "run").distilled
    report = evaluate(dset, test, get_protocol("cpu").with_runs(2).with_epochs(2), train_store=train,
                      cache_dir=tmp_path / "refs")
    assert set(report.references) == {"random real IPC 1", BYTES_REFERENCE, H264_REFERENCE, "full training set"}
    assert report.references[BYTES_REFERENCE].info["ipc"] == 4  # float32 IPC 1 = 4 uint8 clips per class
    assert report.all_in_bytes == report.storage_bytes  # a pixel set needs nothing outside itself
    back = type(report).from_json(report.to_json())
    assert back.references[H264_REFERENCE].info == report.references[H264_REFERENCE].info
    assert torch.isclose(torch.tensor(back.result.top1_mean), torch.tensor(report.result.top1_mean))


def _slow_reference(counter: Path, top1: float, seconds: float) -> Summary:
    """A reference computation that takes ``seconds`` and leaves a line in ``counter`` per computation."""
    with open(counter, "a", encoding="utf-8") as fh:
        fh.write("computed\n")
    time.sleep(seconds)
    return Summary([RunResult(seed=0, top1=top1, top5=1.0, per_class=[top1], final_train_loss=0.0,
                              train_seconds=seconds)])


def test_evaluations_side_by_side_compute_a_reference_once_and_a_killed_one_does_not_block(tmp_path):
    fork = multiprocessing.get_context("fork")
    counter, cache = tmp_path / "computed.txt", tmp_path / "refs"
    first = fork.Process(target=_cached, args=(cache, "k", partial(_slow_reference, counter, 0.5, 2.0)))
    first.start()
    while not counter.exists():  # the first process holds the key's lock and is computing
        time.sleep(0.01)
    # a second evaluation needing the same key waits for the first and reads its result
    summary = _cached(cache, "k", partial(_slow_reference, counter, 0.9, 0.0))
    first.join()
    assert summary.runs[0].top1 == 0.5 and counter.read_text().count("computed") == 1

    # a process killed while computing leaves no lock behind: the next one computes the key itself
    killed = fork.Process(target=_cached, args=(cache, "j", partial(_slow_reference, counter, 0.5, 60.0)))
    killed.start()
    while counter.read_text().count("computed") < 2:
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    killed.join()
    assert _cached(cache, "j", partial(_slow_reference, counter, 0.7, 0.0)).runs[0].top1 == 0.7
    assert json.loads((cache / "j.json").read_text())["runs"][0]["top1"] == 0.7
