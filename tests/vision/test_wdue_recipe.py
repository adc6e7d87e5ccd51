"""The wdue recipe (WDUE Algorithm 1) end to end on the committed CIFAR-10 fixture."""

import json
import re

import pytest
import torch

from metaloss.core.harness import Run
from metaloss.vision.data import ImageDataset
from metaloss.vision.recipes.wdue import (
    METHODS,
    distillation_targets,
    main,
    make_setting,
    predict_probs,
    train_supervised,
)

from .fixture_config import fixture_config

TINY = [
    "seeds=[0]", "data.labeled=300", "data.val_size=100", "data.unlabeled=400", "data.test_limit=100",
    "data.workers=0", "teacher.arch=cifar_resnet14", "student.arch=cifar_resnet8", "teacher.epochs=2",
    "student.epochs=1", "student.distill_epochs=2", "optim.batch_size=64",
]


def _config(tmp_path, *overrides):
    return fixture_config("wdue", tmp_path, *TINY, *overrides)


@pytest.mark.slow
def test_every_method_distils_with_its_weights_and_resumes_nothing(tmp_path):
    config = _config(tmp_path, f"methods=[{','.join(METHODS)}]", "weights.every_epoch=true")
    run = Run(tmp_path / "run", config, "wdue")
    main(run)
    run.finalize()
    results = {r["method"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    assert {"teacher", "pretrain", *METHODS} <= results.keys()
    for method in METHODS:
        r = results[method]
        assert 0.0 <= r["test_acc"] <= 1.0 and r["best_epoch"] in (0, 1)
        assert r["teacher_test_acc"] == results["unweighted"]["teacher_test_acc"]
    assert results["unweighted"]["weight_teacher_wrong"] == 1.0
    # the oracle drops exactly the examples the teacher got wrong
    assert results["oracle_filter"]["weight_teacher_wrong"] == 0.0
    assert results["oracle_filter"]["weight_teacher_right"] == 1.0
    for method in ("weighted", "composition", "fidelity"):
        state = torch.load(tmp_path / "run" / "checkpoints" / f"{method}-seed0.pt", weights_only=False)
        w = state["weights"]["table"][:, 0]
        assert w.shape == (300 + 400,) and bool((w[:300] == 1).all())  # S_l keeps weight 1
        assert bool((w[300:] > 0).all()) and bool((w[300:] <= 1).all())
        assert results[method]["estimate_s"] > 0
    # every epoch: the student-dependent weights before each of the 2 epochs; the rest once
    assert {m: results[m]["weight_estimates"] for m in METHODS} == {
        "unweighted": 1, "weighted": 2, "fidelity": 1, "composition": 2, "oracle_filter": 1}
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    main(Run(tmp_path / "run", config, "wdue"))
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}


def test_bad_settings_are_refused_before_any_work(refused):
    bad = (("methods=[mixup]", "methods\\[0\\]: expected 'unweighted'"),
           ("distill.labels=fuzzy", "distill.labels: expected 'hard' or 'soft'"),
           ("teacher.seed=0", "needs data.split_seed"))
    for override, message in bad:
        assert re.search(message, refused("wdue", override))


def test_distillation_targets_are_true_labels_then_the_teachers_hard_or_soft_labels():
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    labels = torch.tensor([2, 0, 1])
    hard = distillation_targets(labels, probs, "hard")
    assert torch.equal(hard, torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]]).float())
    soft = distillation_targets(labels, probs, "soft")
    assert torch.equal(soft[:3], hard[:3]) and torch.equal(soft[3:], probs)
    with pytest.raises(ValueError, match="'hard' or 'soft'"):
        distillation_targets(labels, probs, "argmax")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        distillation_targets(torch.tensor([3]), probs, "hard")


def test_teacher_probabilities_are_the_softmax_at_the_temperature():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (7, 3, 4, 4), dtype=torch.uint8)
    data = ImageDataset(images, torch.zeros(7, dtype=torch.int64))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5))
    logits = model(data.images.float() / 255)
    cfg = {"data": {"workers": 0}}
    for t in (1.0, 4.0):
        probs = predict_probs(model, data, "cpu", cfg, temperature=t)
        assert torch.allclose(probs, torch.softmax(logits / t, dim=1), atol=1e-6)
    # a higher temperature flattens the teacher: its mean max-probability drops
    confidence = {t: predict_probs(model, data, "cpu", cfg, t).max(1).values.mean() for t in (1.0, 4.0)}
    assert confidence[4.0] < confidence[1.0]


def test_the_teacher_and_pretrained_student_are_the_same_whatever_ran_before_them(tmp_path):
    """Their initial weights come from the unit's seed, not from the process's random state."""
    from accelerate import Accelerator

    config = _config(tmp_path, "teacher.epochs=1")
    setting = make_setting(config, 0)
    states = []
    for name, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)
        run = Run(tmp_path / name, config, "wdue")
        states.append([train_supervised(run, Accelerator(), setting, unit, config[part]).state_dict()
                       for unit, part in (("teacher", "teacher"), ("pretrain", "student"))])
    for first, second in zip(*states):
        assert all(torch.equal(first[k], second[k]) for k in first)
