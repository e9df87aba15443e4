"""janus report: Table 9-shaped rows from eval metrics, best evaluation per run, label quality, outputs."""

from __future__ import annotations

import csv
import json

import pytest

from janus_build.errors import InputError
from janus_build.report import ReportConfig, paper_rows, run_report


def _metrics(val, v2, s, r, a):
    shifts = dict(
        zip(("imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a"), (val, v2, s, r, a))
    )
    avg = (v2 + s + r + a) / 4
    return {
        "format": "janus-eval-metrics/1",
        "shifts": {k: {"top1": v} for k, v in shifts.items()},
        "val_top1": val,
        "average_robustness": avg,
        "effective_robustness_ratio": avg / val,
    }


def test_rows_take_each_runs_best_evaluation_and_label_quality(tmp_path):
    run = tmp_path / "rn50-int"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "epoch_0001.json").write_text(json.dumps(_metrics(0.5, 0.4, 0.1, 0.1, 0.1)))
    (run / "eval" / "epoch_0002.json").write_text(json.dumps(_metrics(0.8, 0.7, 0.3, 0.3, 0.1)))
    clip = tmp_path / "clip.json"
    clip.write_text(json.dumps(_metrics(0.9, 0.8, 0.6, 0.7, 0.5)))
    stats = tmp_path / "match_stats.json"
    stats.write_text(json.dumps({"label_accuracy": 0.967, "dataset_utilization": 0.867}))
    rows = run_report(
        ReportConfig(runs=(str(run), f"clip|<b>={clip}"), out=tmp_path / "out", label_stats=(f"rn50-int={stats}",))
    )
    first, second = rows
    assert first["run"] == "rn50-int" and first["Val"] == 0.8 and first["Avg. Rob."] == pytest.approx(0.35)
    assert (
        first["Eff. Rob."] == pytest.approx(0.35 / 0.8) and first["Label Acc."] == 0.967 and first["DS Util."] == 0.867
    )
    assert second["Label Acc."] is None and second["A"] == 0.5
    table = list(csv.DictReader((tmp_path / "out" / "table9.csv").read_text().splitlines()))
    assert table[0]["Val"] == "0.800" and table[1]["Label Acc."] == ""
    markdown = (tmp_path / "out" / "table9.md").read_text()
    assert "clip\\|&lt;b>" in markdown and markdown.count("\n") == 4
    assert (tmp_path / "out" / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_rows_are_shipped():
    rows = paper_rows()
    assert len(rows) == 48 and rows[2]["model"] == "in100-int" and rows[2]["Avg. Rob."] == "0.424"


def test_a_run_without_metrics_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match="no metrics"):
        run_report(ReportConfig(runs=(str(tmp_path),), out=tmp_path / "out"))
