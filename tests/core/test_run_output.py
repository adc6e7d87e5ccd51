"""What a run shows: a bar on a terminal, one log line per unit in a file, metrics to trackers."""

import importlib.util
import logging
import sys

import pytest
from accelerate.tracking import GeneralTracker

from metaloss.core.harness import Run


class _Terminal:
    def __init__(self, stream, tty: bool):
        self.stream, self.tty = stream, tty

    def isatty(self):
        return self.tty

    def __getattr__(self, name):
        return getattr(self.stream, name)


def test_redirected_progress_logs_one_line_per_loop_and_no_bar(tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setattr(sys, "stderr", _Terminal(sys.stderr, tty=False))
    run = Run(tmp_path, {}, "t")
    with caplog.at_level(logging.INFO, logger="metaloss.core.harness.run"):
        assert list(run.progress(range(40), desc="kd seed 3")) == list(range(40))
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["kd seed 3: 40 epochs"]
    assert "\r" not in capfd.readouterr().err


def test_on_a_terminal_progress_is_a_bar(tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setattr(sys, "stderr", _Terminal(sys.stderr, tty=True))
    run = Run(tmp_path, {}, "t")
    with caplog.at_level(logging.INFO, logger="metaloss.core.harness.run"):
        assert list(run.progress(range(3), desc="ce seed 0")) == [0, 1, 2]
    assert caplog.records == []
    assert "ce seed 0" in capfd.readouterr().err


def test_other_ranks_show_no_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(sys, "stderr", _Terminal(sys.stderr, tty=True))
    run = Run(tmp_path, {}, "t")
    with caplog.at_level(logging.INFO, logger="metaloss.core.harness.run"):
        assert list(run.progress(range(2), desc="x")) == [0, 1]
    assert caplog.records == []


class _Recording(GeneralTracker):
    name = "recording"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.config, self.logged, self.finished = None, [], False

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None, **kwargs):
        self.logged.append((values, step))

    def finish(self):
        self.finished = True


def test_trackers_receive_every_metric_by_unit_and_epoch(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    tracker = _Recording()
    run = Run(tmp_path, {"trackers": [tracker], "optim": {"lr": 0.1}, "seeds": [0, 1]}, "toy")
    run.log({"method": "kd", "seed": 1, "epoch": 3, "val_acc": 0.5, "flag": True})
    run.finalize()
    assert tracker.config == {"trackers": str([tracker]), "optim.lr": 0.1, "seeds": "[0, 1]"}
    assert tracker.logged == [({"kd/seed1/val_acc": 0.5}, 3)]
    assert tracker.finished


class _WandbRun:
    def __init__(self):
        self.axes = []

    def define_metric(self, name, step_metric=None):
        self.axes.append((name, step_metric))


class _FakeWandb(_Recording):
    name = "wandb"

    def __init__(self):
        super().__init__()
        self.run = _WandbRun()

    @property
    def tracker(self):
        return self.run


def test_wandb_gets_one_epoch_axis_per_unit_instead_of_its_growing_step(tmp_path, monkeypatch):
    # W&B drops a step lower than one it has logged; the second unit restarts at epoch 0
    monkeypatch.delenv("RANK", raising=False)
    tracker = _FakeWandb()
    run = Run(tmp_path, {"trackers": [tracker]}, "toy")
    for seed in (0, 1):
        for epoch in (0, 1):
            run.log({"method": "kd", "seed": seed, "epoch": epoch, "acc": epoch / 2})
    assert tracker.run.axes == [("kd/seed0/*", "kd/seed0/epoch"), ("kd/seed1/*", "kd/seed1/epoch")]
    assert tracker.logged[2] == ({"kd/seed1/acc": 0.0, "kd/seed1/epoch": 0}, None)


def test_finalize_prints_the_table_and_logs_where_the_report_is(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.delenv("RANK", raising=False)
    tracker = _Recording()
    run = Run(tmp_path, {"trackers": [tracker]}, "toy")
    run.unit("ce", 0).finish({"acc": 0.91234})
    run.log({"method": "ce", "seed": 0, "epoch": 0, "acc": 0.9})
    with caplog.at_level(logging.INFO, logger="metaloss.core.harness.run"):
        run.finalize()
    assert "| ce | 1 | 0.9123 |" in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records] == [f"report: {tmp_path / 'summary.md'}"]
    assert tracker.finished


def test_trackers_must_be_a_list_and_desc_a_str(tmp_path):
    with pytest.raises(TypeError, match=r"trackers.*list.*'tensorboard'"):
        Run(tmp_path, {"trackers": "tensorboard"}, "t")
    with pytest.raises(TypeError, match="desc must be a str, got int"):
        Run(tmp_path, {}, "t").progress(range(2), desc=3)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="needs wandb to be missing")
@pytest.mark.filterwarnings("ignore:`log_with=:UserWarning")  # accelerate's own, when none started
def test_a_tracker_whose_package_is_missing_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("RANK", raising=False)
    run = Run(tmp_path, {"trackers": ["wandb"]}, "t")
    with caplog.at_level(logging.WARNING, logger="metaloss.core.harness.run"):
        run.log({"method": "ce", "seed": 0, "epoch": 0, "acc": 1.0})
    assert "asked for ['wandb'], started only []" in caplog.text
