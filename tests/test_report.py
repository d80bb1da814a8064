"""Result tables."""

from videodd.evaluate import EvalReport, RunResult, Summary
from videodd.report import cross_arch_table


def summary(*top1: float) -> Summary:
    return Summary([RunResult(seed=i, top1=a, top5=min(1.0, a + 0.3), per_class=[a, a], final_train_loss=0.1,
                              train_seconds=1.0) for i, a in enumerate(top1)])


def report(model: str, result: Summary, method: str = "dm", ipc: int = 1, **refs: Summary) -> EvalReport:
    return EvalReport(method=method, ipc=ipc, dataset="tiny", dataset_fingerprint="f", model=model,
                      protocol={"name": "cpu", "version": 1}, result=result, classes=["a", "b"], storage_bytes=10,
                      storage_by_tensor={"videos": 10}, full_train_bytes=100, wall_seconds=12.4,
                      peak_memory_bytes=0, peak_memory_kind="rss", references=dict(refs))


def test_cross_arch_table_has_one_row_per_model():
    reports = [report("convnet3d", summary(0.2, 0.4), full=summary(0.5)), report("convnet-lstm", summary(0.1))]
    lines = cross_arch_table(reports).splitlines()
    assert lines[0] == "| model | top-1 (%) | top-5 (%) | runs | full top-1 (%) | wall time |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| convnet3d | 30.0 ± 10.0 | 60.0 ± 10.0 | 2 | 50.0 ± 0.0 | 12 s |"
    assert lines[3] == "| convnet-lstm | 10.0 ± 0.0 | 40.0 ± 0.0 | 1 | - | 12 s |"  # no reference on this one
    assert len(lines) == 4


def test_cross_arch_table_names_the_set_when_reports_differ():
    table = cross_arch_table([report("convnet3d", summary(0.2)), report("convnet3d", summary(0.3), method="mtt")])
    assert "| convnet3d (dm, IPC 1) |" in table and "| convnet3d (mtt, IPC 1) |" in table
