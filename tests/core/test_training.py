"""Validation-only model selection and the checkpointed epoch loop."""

import json

import pytest
import torch
from torch import nn

from metaloss.core import ValidationSelector, train_epochs
from metaloss.core.harness import Run, sgd_epoch


def test_selector_uses_validation_only_and_keeps_the_first_of_ties():
    sel = ValidationSelector()
    for epoch, (val, test) in enumerate([(0.5, 0.9), (0.7, 0.1), (0.7, 0.99), (0.6, 1.0)]):
        sel.update(epoch, val, test)
    assert (sel.best_epoch, sel.best_val, sel.test_at_best) == (1, 0.7, 0.1)
    with pytest.raises(ValueError, match="validation metric must be a number"):
        sel.update(4, float("nan"))


def _loop(run, epochs, calls):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    vals = [0.1, 0.5, 0.3, 0.6, 0.2, 0.4]

    def epoch_fn(epoch):
        calls.append(epoch)
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"val_acc": vals[epoch], "test_acc": float(epoch), "noise": float(torch.rand(()))}

    return model, train_epochs(run.unit("m", 0), model=model, stateful={"optimizer": opt},
                               epochs=epochs, epoch_fn=epoch_fn, log=run.log)


def test_train_epochs_resumes_to_the_uninterrupted_result(tmp_path):
    straight_calls, resumed_calls = [], []
    model_a, res_a = _loop(Run(tmp_path / "a", {}, "t"), 6, straight_calls)
    run_b = Run(tmp_path / "b", {}, "t")
    _loop(run_b, 4, [])  # "killed" after epoch 3: its checkpoint says so
    model_b, res_b = _loop(run_b, 6, resumed_calls)
    assert resumed_calls == [4, 5]
    assert (res_a.metrics["best_epoch"], res_a.metrics["val_acc"], res_a.metrics["test_acc"]) == (3, 0.6, 3.0)
    assert (res_b.metrics["best_epoch"], res_b.metrics["test_acc"]) == (3, 3.0)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # RNG restored: the resumed epochs drew the same random numbers
    last_a, last_b = (json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[-1])
                      for d in ("a", "b"))
    assert last_a["epoch"] == last_b["epoch"] == 5 and last_a["noise"] == last_b["noise"]


def test_train_epochs_requires_the_validation_metric(tmp_path):
    run = Run(tmp_path, {}, "t")
    model = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="must return 'val_acc'"):
        train_epochs(run.unit("m", 0), model=model, stateful={}, epochs=1,
                     epoch_fn=lambda e: {"acc": 1.0})


def test_test_fn_is_measured_only_at_new_validation_bests(tmp_path):
    vals = [0.1, 0.5, 0.3, 0.6, 0.6, 0.2]
    measured = []
    epoch_now = []

    def epoch_fn(epoch):
        epoch_now[:] = [epoch]
        return {"val_acc": vals[epoch]}

    def test_fn():
        measured.append(epoch_now[0])
        return 10.0 + epoch_now[0]

    run = Run(tmp_path, {}, "t")
    result = train_epochs(run.unit("m", 0), model=nn.Linear(1, 1), stateful={}, epochs=6,
                          epoch_fn=epoch_fn, log=run.log, test_fn=test_fn)
    assert measured == [0, 1, 3]  # epoch 4 ties 0.6: not a new best, not measured
    assert (result.metrics["best_epoch"], result.metrics["test_acc"]) == (3, 13.0)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("test_acc") for r in logged] == [10.0, 11.0, None, 13.0, None, None]


def test_sgd_epoch_steps_on_the_mean_loss_and_stops_at_a_diverged_one():
    """The mean is over examples; a NaN loss raises before any weight moves."""
    model = nn.Linear(2, 1, bias=False)
    nn.init.ones_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    batches = [(torch.tensor([0, 1]), x[:2]), (torch.tensor([2]), x[2:])]
    mean = sgd_epoch(batches, lambda idx, inputs: (model(inputs) ** 2).mean(), [optimizer])
    # batch 1: loss (1 + 4) / 2 = 2.5, gradient (1, 4), weights (0.9, 0.6); batch 2: loss 1.5^2
    assert mean == pytest.approx((2.5 * 2 + 1.5 ** 2) / 3)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match="the training loss must be finite, got \\[nan\\]"):
        sgd_epoch(batches, lambda idx, inputs: model(inputs).sum() * float("nan"), [optimizer])
    assert torch.equal(model.weight, before)
