"""What a run shows: a bar on a terminal, one log line per unit in a file, metrics to trackers."""

import logging
import sys

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
