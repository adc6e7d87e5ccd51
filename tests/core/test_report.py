"""The report: cells are mean ± sample std over seeds; a re-logged epoch keeps its last record."""

import json

import pytest

from metaloss.core.harness.report import (
    collect_results,
    metric_series,
    plot_metrics,
    read_metrics,
    summary_table,
)


def _results(method, values, key="acc"):
    return [{"method": method, "seed": s, key: v} for s, v in enumerate(values)]


def test_summary_cells_are_mean_and_sample_std():
    table = summary_table(_results("ce", [1, 2, 3]) + _results("kd", [0.91234]))
    lines = table.splitlines()
    assert lines[0] == "| method | n | acc |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| ce | 3 | 2.000 ± 1.000 |"
    assert lines[3] == "| kd | 1 | 0.912 |"


def test_summary_has_one_precision_per_column_and_first_appearance_order():
    # four significant digits of the column's largest mean, for every cell of the column
    results = _results("kd", [91.2345, 91.2345]) + _results("ce", [0.5, 1.5])
    lines = summary_table(results).splitlines()
    assert lines[2] == "| kd | 2 | 91.23 ± 0.00 |"
    assert lines[3] == "| ce | 2 | 1.00 ± 0.71 |"
    accuracies = _results("amal", [0.9441, 0.9673]) + _results("ce", [0.8398, 0.8102, 0.8])
    lines = summary_table(accuracies).splitlines()
    assert lines[2:] == ["| amal | 2 | 0.9557 ± 0.0164 |", "| ce | 3 | 0.8167 ± 0.0207 |"]


def test_summary_prints_whole_numbers_without_decimals():
    lines = summary_table(_results("ce", [4, 4]) + _results("kd", [11]), metrics=["acc"]).splitlines()
    assert lines[2:] == ["| ce | 2 | 4 ± 0 |", "| kd | 1 | 11 |"]


def test_summary_means_of_counts_have_one_decimal():
    # best_epoch is an int per seed: a tenth of an epoch is precision enough
    results = _results("ce", [5, 30, 12, 25, 21], key="best_epoch") + _results("kd", [12], key="best_epoch")
    assert summary_table(results).splitlines()[2:] == ["| ce | 5 | 18.6 ± 10.1 |", "| kd | 1 | 12.0 |"]
    lines = summary_table(_results("ce", [12345, 12346])).splitlines()
    assert lines[2] == "| ce | 2 | 12346 ± 1 |", "four significant digits still bound a count"


def test_summary_precision_is_shared_by_mean_and_std_of_every_row():
    # the largest value sets the column's decimals, even if it is a std
    results = _results("trust", [-0.2, 0.3]) + _results("ce", [0.0012])
    lines = summary_table(results).splitlines()
    assert lines[2:] == ["| trust | 2 | 0.0500 ± 0.3536 |", "| ce | 1 | 0.0012 |"]


def test_summary_of_tiny_values_uses_one_exponent_format():
    lines = summary_table(_results("ce", [1e-6, 3e-6]) + _results("kd", [5e-7])).splitlines()
    assert lines[2:] == ["| ce | 2 | 2.000e-06 ± 1.414e-06 |", "| kd | 1 | 5.000e-07 |"]


def test_summary_prints_non_finite_values_without_failing():
    results = _results("ce", [float("inf"), 0.5]) + _results("kd", [float("nan")]) + _results("l2r", [0.25])
    assert summary_table(results).splitlines()[2:] == [
        "| ce | 2 | inf ± nan |", "| kd | 1 | nan |", "| l2r | 1 | 0.2500 |"]


def test_summary_default_columns_skip_seed_and_non_numbers():
    results = [{"method": "ce", "seed": 0, "note": "x", "flag": True, "a": 1, "b": None},
               {"method": "ce", "seed": 1, "a": 3, "b": 2.0}]
    lines = summary_table(results).splitlines()
    assert lines[0] == "| method | n | a | b |"
    assert lines[2] == "| ce | 2 | 2.0 ± 1.4 | 2 |"


def test_summary_chosen_metrics_and_missing_values():
    lines = summary_table(_results("ce", [1.0]), metrics=["acc", "loss"]).splitlines()
    assert lines[0] == "| method | n | acc | loss |"
    assert lines[2] == "| ce | 1 | 1 | - |"


def test_summary_validates_its_inputs():
    with pytest.raises(ValueError, match="method"):
        summary_table([{"acc": 1}])
    with pytest.raises(TypeError, match="metrics"):
        summary_table([], metrics="acc")


def test_collect_results_sorts_seeds_numerically(tmp_path):
    (tmp_path / "results").mkdir()
    for seed in (10, 2):
        path = tmp_path / "results" / f"ce-seed{seed}.json"
        path.write_text(json.dumps({"method": "ce", "seed": seed}))
    assert [r["seed"] for r in collect_results(tmp_path)] == [2, 10]


def test_series_keep_the_last_record_of_a_repeated_epoch():
    records = [
        {"method": "amal", "seed": 0, "epoch": 0, "acc": 0.1, "time": 1},
        {"method": "amal", "seed": 0, "epoch": 1, "acc": 0.2, "time": 2},
        # killed during epoch 1, resumed: epoch 1 is logged again
        {"method": "amal", "seed": 0, "epoch": 1, "acc": 0.4, "time": 3},
        {"method": "amal", "seed": 1, "epoch": 0, "acc": 0.3, "time": 4},
        {"method": "amal", "seed": 1, "epoch": 1, "acc": 0.6, "time": 5},
        {"note": "no method/seed/epoch: not plotted", "acc": 9.0},
    ]
    series = metric_series(records)
    assert list(series) == ["acc"], "time is not a metric"
    epochs, means, stds = series["acc"]["amal"]
    assert epochs == [0, 1]
    assert means == pytest.approx([0.2, 0.5])
    assert stds == pytest.approx([0.1414214, 0.1414214])


def test_series_of_one_seed_have_zero_std_and_skip_missing_values():
    records = [{"method": "ce", "seed": 0, "epoch": e, "acc": 1.0, "meta": 2.0} for e in range(2)]
    records[1]["meta"] = None
    series = metric_series(records)
    assert series["acc"]["ce"] == ([0, 1], [1.0, 1.0], [0.0, 0.0])
    assert series["meta"]["ce"] == ([0], [2.0], [0.0])


def test_plot_metrics_writes_one_png_per_metric(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"method": "ce", "seed": 0, "epoch": e, "acc": e, "loss/train": 1.0})
             for e in range(3)]
    path.write_text("\n".join(lines) + '\n{"method": "ce", "se')  # a kill mid-write
    assert len(read_metrics(path)) == 3
    paths = plot_metrics(path, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["acc.png", "loss_train.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_plot_metrics_with_nothing_to_plot_writes_nothing(tmp_path):
    assert plot_metrics(tmp_path / "missing.jsonl", tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()
