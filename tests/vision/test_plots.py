"""The vision recipes' pictures: what goes into them, not how they look."""

import matplotlib
import pytest
import torch

from metaloss.vision.plots import plot_curves, plot_loss_surfaces, plot_weight_histograms

matplotlib.use("Agg")


def _record(method, seed, epoch, **metrics):
    return {"method": method, "seed": seed, "epoch": epoch, **metrics}


def test_curves_average_seeds_and_a_resumed_epoch_counts_once(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = []
    original = matplotlib.axes.Axes.plot

    def spy(self, x, y, *args, label=None, **kwargs):
        drawn.append((label, list(x), list(y)))
        return original(self, x, y, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    records = [
        _record("ce", 0, 0, val_acc=0.2), _record("ce", 0, 1, val_acc=0.3),
        _record("ce", 1, 0, val_acc=0.4), _record("ce", 1, 1, val_acc=0.9),
        _record("ce", 1, 1, val_acc=0.5),  # the same epoch logged again after a resume: this one wins
        _record("gce", 0, 0, test_acc=0.7),  # no val_acc: left out of that panel
    ]
    path = plot_curves(records, {"val_acc": "validation"}, tmp_path / "curves.png", "title")
    assert path.stat().st_size > 0
    ((label, x, y),) = drawn  # one line: ce's mean over its two seeds
    assert label == "ce" and x == [1, 2] and y == pytest.approx([0.3, 0.4])


def test_curves_write_nothing_when_no_method_has_the_metric(tmp_path):
    assert plot_curves([_record("ce", 0, 0, val_acc=0.2)], {"selected_precision": "p"},
                       tmp_path / "none.png", "t") is None
    assert not (tmp_path / "none.png").exists()


def test_weight_histograms_leave_out_unseen_examples(tmp_path):
    weights = torch.tensor([1.0, float("nan"), 0.5, 2.0])
    corrupted = torch.tensor([True, False, False, True])
    assert plot_weight_histograms({"l2rw": [(weights, corrupted)]}, tmp_path / "w.png").stat().st_size > 0
    with pytest.raises(ValueError, match="at least one method"):
        plot_weight_histograms({}, tmp_path / "w.png")


def test_loss_surfaces_draw_the_start_and_evenly_spaced_epochs(tmp_path, monkeypatch):
    import matplotlib.axes

    titles = []
    original = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda self, text, *a, **k: titles.append(text) or original(self, text, *a, **k))
    grid = torch.linspace(0, 1, 5)
    surfaces = [torch.rand(5, 5) for _ in range(11)]  # the start and 10 epochs
    assert plot_loss_surfaces(surfaces, grid, tmp_path / "s.png", "t", panels=3).stat().st_size > 0
    assert titles == ["start of training", "after epoch 5", "after epoch 10"]
    with pytest.raises(ValueError, match="at least one surface"):
        plot_loss_surfaces([], grid, tmp_path / "s.png", "t")
