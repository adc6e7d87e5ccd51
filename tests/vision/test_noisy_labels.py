"""The noisy_labels stage on the committed CIFAR-10 fixture: its data, its methods, the recipe."""

import json
import shutil

import pytest
import torch

from metaloss.core.harness import Run
from metaloss.vision.noisy_data import LabelTruth, make_noisy_data
from metaloss.vision.noisy_methods import (
    METHOD_TRAINERS,
    CoTeachingPair,
    Diagnostics,
    NoisyTrainer,
    stratified_folds,
)
from metaloss.vision.recipes.noisy_labels import logit_gradients, main, per_class_ratios
from metaloss.vision_catalog import NOISY_METHODS

from .fixture_config import fixture_config

TINY = [
    "seeds=[0]", "data.train_limit=800", "data.val_size=200", "data.test_limit=100", "data.workers=0",
    "meta.size=100", "model.arch=cifar_resnet8", "model.epochs=2", "optim.milestones=[1]",
    "optim.batch_size=100", "confident_learning.folds=2", "confident_learning.fold_epochs=1",
    "l2t_dln.unroll_steps=2",  # 5 batches an epoch: windows of 2, 2 and the epoch's last 1
]


def _config(tmp_path, *overrides):
    return fixture_config("noisy_labels", tmp_path, *TINY, *overrides)


def test_the_catalog_names_every_method_the_recipe_trains():
    assert set(METHOD_TRAINERS) == set(NOISY_METHODS)


def test_setting_meta_set_is_clean_balanced_and_out_of_the_pool(tmp_path):
    cfg = _config(tmp_path, "noise.rate=0.4")
    data, truth = make_noisy_data(cfg, seed=0)
    assert len(data.meta) == 100 and torch.bincount(data.meta.labels, minlength=10).tolist() == [10] * 10
    assert len(data.train) == 800 - 200 - 100 and len(data.val) == 200
    # no meta image is in the training pool (images compared byte for byte)
    train_rows = {bytes(x.numpy()) for x in data.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in data.meta.images)
    # training and validation labels carry the same noise; the truth knows which were flipped
    assert torch.equal(truth.corrupted, data.train.labels != truth.labels)
    assert 0.3 < truth.corrupted.float().mean() < 0.5
    clean_val = make_noisy_data(_config(tmp_path, "noise.rate=0"), seed=0)[0].val.labels
    assert 0.3 < (data.val.labels != clean_val).float().mean() < 0.5
    assert data.without_meta().meta is None and data.without_meta().meta_size == 0


def test_setting_long_tail_has_the_exponential_profile(tmp_path):
    cfg = _config(tmp_path, "data.train_limit=2000", "imbalance_ratio=10", "noise.rate=0")
    data, truth = make_noisy_data(cfg, seed=1)
    counts = torch.bincount(data.train.labels, minlength=10)
    head = int(counts[0])
    expected = [int(head * 10 ** (-i / 9) + 1e-9) for i in range(10)]
    assert counts.tolist() == expected and not truth.corrupted.any()
    val_counts = torch.bincount(data.val.labels, minlength=10)
    assert val_counts[0] > val_counts[9] >= 1  # validation follows the training profile


@pytest.mark.parametrize("kind", ["instance", "asymmetric", "pair", "two_similar"])
def test_setting_every_noise_kind_corrupts_at_about_the_rate(tmp_path, kind):
    data, truth = make_noisy_data(_config(tmp_path, f"noise.kind={kind}", "noise.rate=0.4"), seed=0)
    # asymmetric flips only the five mapped classes of CIFAR-10: about half the rate
    low, high = (0.12, 0.28) if kind == "asymmetric" else (0.3, 0.5)
    assert low < truth.corrupted.float().mean() < high


def test_stratified_folds_split_every_class_evenly():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 3)
    folds = stratified_folds(labels, 3, seed=0)
    for c in range(3):
        counts = torch.bincount(folds[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1


def test_coteaching_pair_returns_both_logits_in_training_and_the_first_in_eval():
    first, second = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    pair, x = CoTeachingPair(first, second), torch.randn(4, 3)
    z1, z2 = pair(x)
    assert torch.equal(z1, first(x)) and torch.equal(z2, second(x))
    assert torch.equal(pair.eval()(x), first(x))


def test_diagnostics_measure_the_precision_of_a_selection():
    corrupted = torch.tensor([True, False, False, True, False, False])
    truth = LabelTruth(torch.zeros(6, dtype=torch.long), corrupted)
    d = Diagnostics(truth, 6)
    d.selected(torch.tensor([0, 1, 2]), torch.tensor([True, True, False]))
    d.selected(torch.tensor([3, 4, 5]), torch.tensor([False, True, True]))
    assert d.epoch_metrics() == {"selected_precision": 0.75, "selected_fraction": 4 / 6}
    assert d.epoch_metrics() == {}  # reset after each epoch
    assert d.subset_metrics(torch.tensor([0, 1])) == {"selected_precision": 0.5}
    assert Diagnostics(None, 6).subset_metrics(torch.tensor([0])) == {}


def test_diagnostics_measure_pseudo_labels_against_the_clean_labels():
    clean = torch.tensor([0, 1, 2, 3])
    truth = LabelTruth(clean, torch.tensor([True, False, False, False]))  # row 0's training label is wrong
    d = Diagnostics(truth, 4)
    d.pseudo_labelled(torch.tensor([0, 1]), torch.tensor([0, 2]))  # right, wrong
    d.pseudo_labelled(torch.tensor([2, 3]), torch.tensor([2, 3]))  # right, right
    assert d.epoch_metrics() == {"pseudo_label_accuracy": 0.75, "given_label_accuracy": 0.75}
    assert d.epoch_metrics() == {}
    d.pseudo_labelled(torch.tensor([0]), torch.tensor([1]))
    assert d.epoch_metrics() == {"pseudo_label_accuracy": 0.0, "given_label_accuracy": 0.0}


def test_logit_gradients_become_a_dln_and_a_ce_line_per_method():
    records = [{"method": "l2t_dln", "seed": 0, "epoch": 0, "dln_logit_gradient": 0.3,
                "ce_logit_gradient": 0.9},
               {"method": "ce", "seed": 0, "epoch": 0, "val_acc": 0.4}]
    rows = logit_gradients(records, ["l2t_dln"])
    assert [(r["method"], r["logit_gradient"]) for r in rows] == [
        ("l2t_dln: DLN", 0.3), ("l2t_dln: CE at the same logits", 0.9)]


def test_per_class_ratios_become_one_line_per_class():
    records = [{"method": "dml", "seed": 0, "epoch": 0, "ratio_0": 0.1, "ratio_1": 0.4, "val_acc": 0.5},
               {"method": "ce", "seed": 0, "epoch": 0, "val_acc": 0.4}]
    rows = per_class_ratios(records, "dml")
    assert [(r["method"], r["ratio"], r["epoch"]) for r in rows] == [("class 0", 0.1, 0), ("class 1", 0.4, 0)]


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m, needs_meta in NOISY_METHODS.items() if not needs_meta])
def test_a_method_without_a_meta_set_never_reads_a_clean_label(tmp_path, method):
    """Training with the true clean labels and with garbage in their place gives the same model."""
    from accelerate import Accelerator

    cfg = _config(tmp_path, "noise.rate=0.4", "model.epochs=1")
    data, truth = make_noisy_data(cfg, seed=0)
    garbage = LabelTruth(torch.randint(0, 10, truth.labels.shape), ~truth.corrupted)
    states = []
    for name, labels in (("true", truth), ("garbage", garbage)):
        run = Run(tmp_path / name, cfg, "noisy_labels")
        unit = run.unit(method, 0)
        trainer = NoisyTrainer(run, Accelerator(), data.without_meta(), cfg)
        selected = METHOD_TRAINERS[method](trainer, unit, Diagnostics(labels, len(data.train)))
        assert selected.metrics["meta_size"] == 0
        states.append(selected.state)
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.slow
def test_every_method_trains_reports_and_resumes_nothing(tmp_path):
    cfg = _config(tmp_path, "noise.rate=0.4", f"methods=[{','.join(NOISY_METHODS)}]",
                  "reweighting.mode=first_order")
    run = Run(tmp_path / "run", cfg, "noisy_labels")
    main(run)
    run.finalize()
    results = {r["method"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    assert set(NOISY_METHODS) | {"cl_fold0", "cl_fold1"} == results.keys()
    for method, needs_meta in NOISY_METHODS.items():
        r = results[method]
        assert r["meta_size"] == (100 if needs_meta else 0)
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["last_test_acc"] <= 1 and r["best_epoch"] in (0, 1)
    assert 0 < results["confident_learning"]["selected_fraction"] < 1
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    coteaching = [r for r in records if r.get("method") == "coteaching"]
    assert len(coteaching) == 2 and all(0 <= r["selected_precision"] <= 1 for r in coteaching)
    assert all("test_acc" in r for r in records if "epoch" in r)  # curves: test measured every epoch
    for method in ("dml", "dml_2nd"):  # R_t(c) of every class, logged per epoch
        rows = [r for r in records if r.get("method") == method]
        assert len(rows) == 2 and all(0 < r[f"ratio_{c}"] <= 1 for r in rows for c in range(10))
        assert all(0 <= r[key] <= 1 for r in rows
                   for key in ("teacher_val_acc", "pseudo_label_accuracy", "given_label_accuracy"))
    for method in ("dln", "dln_dr", "l2t_dln", "l2t_dln_dr"):  # the DLN's and CE's logit gradients
        rows = [r for r in records if r.get("method") == method]
        assert len(rows) == 2
        assert all(r["dln_logit_gradient"] > 0 and r["ce_logit_gradient"] > 0 for r in rows)
        assert all(r["dln_change"] > 0 for r in rows)  # the teacher moved the DLN every epoch
    pngs = ["accuracy", "selection", "weights", "ratios_dml", "ratios_dml_2nd", "logit_gradients"]
    for png in pngs + [f"loss_surface_{m}" for m in ("dln", "dln_dr", "l2t_dln", "l2t_dln_dr")]:
        assert (tmp_path / "run" / "plots" / f"{png}.png").stat().st_size > 0
    state = torch.load(tmp_path / "run" / "checkpoints" / "l2t_dln-seed0.pt", weights_only=False)
    assert len(state["dln_surfaces"]["surfaces"]) == 3  # the start and after each of the 2 epochs
    state = torch.load(tmp_path / "run" / "checkpoints" / "l2rw-seed0.pt", weights_only=False)
    weights = state["diagnostics"]["weights"]["table"][:, 0]
    # every row was weighted (no NaN left), each weight >= 0
    assert weights.shape == (500,) and bool((weights >= 0).all()) and weights.sum() > 0
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    main(Run(tmp_path / "run", cfg, "noisy_labels"))  # resumed: every unit is done, nothing retrains
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    # a finished unit's checkpoint is not kept in the repository: its kept states still draw the plots
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    shutil.rmtree(tmp_path / "run" / "plots")
    main(Run(tmp_path / "run", cfg, "noisy_labels"))
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    for png in ["weights", "logit_gradients"] + [f"loss_surface_{m}" for m in ("dln", "l2t_dln_dr")]:
        assert (tmp_path / "run" / "plots" / f"{png}.png").stat().st_size > 0


@pytest.mark.parametrize("override, match", [
    (["noise.rate=1.0"], "noise.rate"),
    (["noise.rate=-0.1"], "noise.rate"),
    (["meta.size=105"], "split evenly into the 10 classes"),
    (["data.train_limit=1000", "data.val_size=200", "meta.size=800"], "smaller than the training pool"),
    (["imbalance_ratio=0.5"], "imbalance_ratio"),
    (["meta.size=0", "methods=[ce,l2rw]"], r"\['l2rw'\] learn from a clean meta set"),
    (["data.name=cifar100", "noise.kind=asymmetric"], "asymmetric noise is CIFAR-10's class map"),
    (["methods=[ce,mentornet]"], "methods"),
    (["l2t_dln.similarity=l1"], "l2t_dln.similarity"),
    (["l2t_dln.unroll_steps=0"], "l2t_dln.unroll_steps"),
])
def test_bad_input_is_refused_before_any_work(refused, override, match):
    import re

    assert re.search(match, refused("noisy_labels", *override))


class _Killed(RuntimeError):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("method", ["coteaching", "mwnet", "dml", "l2t_dln_dr"])
def test_a_killed_method_resumes_to_the_uninterrupted_model(tmp_path, method):
    """Stopped during its second epoch (after the first checkpoint), then run again: the same weights.
    DML's warm-up ends with the first epoch, so the resumed run must also know it is over."""
    from accelerate import Accelerator

    cfg = _config(tmp_path, "noise.rate=0.4", "reweighting.mode=first_order", "dml.warmup_epochs=1",
                  "l2t_dln.teach_every=2")  # l2t_dln_dr: windows 0 and 2 of an epoch teach, 1 does not
    data, truth = make_noisy_data(cfg, seed=0)
    data = data if NOISY_METHODS[method] else data.without_meta()

    class DiesInSecondEpoch(Diagnostics):
        calls = 0

        def epoch_metrics(self):
            self.calls += 1
            if self.calls == 2:
                raise _Killed
            return super().epoch_metrics()

    def train(folder, diagnostics):
        run = Run(tmp_path / folder, cfg, "noisy_labels")
        trainer = NoisyTrainer(run, Accelerator(), data, cfg)
        return METHOD_TRAINERS[method](trainer, run.unit(method, 0), diagnostics)

    straight = train("straight", Diagnostics(truth, len(data.train)))
    with pytest.raises(_Killed):
        train("killed", DiesInSecondEpoch(truth, len(data.train)))
    resumed = train("killed", Diagnostics(truth, len(data.train)))
    assert resumed.metrics == straight.metrics, (resumed.metrics, straight.metrics)
    assert all(torch.equal(resumed.state[k], straight.state[k]) for k in straight.state)


def test_balanced_accuracy_is_the_mean_of_per_class_accuracies():
    from metaloss.vision.training import accuracy

    class Fixed(torch.nn.Module):  # predicts class 0 for everything
        def forward(self, x):
            return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1)

    batches = [(torch.zeros(4, 1), torch.tensor([0, 0, 0, 1]))]
    assert accuracy(Fixed(), batches) == 0.75
    assert accuracy(Fixed(), batches, balanced=True) == 0.5  # (1 + 0) / 2: the tail class counts as much


@pytest.mark.slow
def test_a_long_tail_selects_on_balanced_validation_accuracy(tmp_path):
    from accelerate import Accelerator

    cfg = _config(tmp_path, "data.train_limit=2000", "imbalance_ratio=10", "noise.rate=0", "model.epochs=1")
    data, truth = make_noisy_data(cfg, seed=0)
    run = Run(tmp_path / "run", cfg, "noisy_labels")
    trainer = NoisyTrainer(run, Accelerator(), data.without_meta(), cfg)
    assert trainer.select_balanced
    selected = METHOD_TRAINERS["ce"](trainer, run.unit("ce", 0), Diagnostics(truth, len(data.train)))
    assert "val_balanced_acc" in selected.metrics and "val_acc" not in selected.metrics
    assert not NoisyTrainer(run, Accelerator(), data, {**cfg, "imbalance_ratio": 1}).select_balanced
