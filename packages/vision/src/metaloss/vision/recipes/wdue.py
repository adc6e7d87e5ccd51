"""Distillation with unlabeled examples, debiased by WDUE's weights (Iliopoulos et al., NeurIPS 2022).

Algorithm 1 of the paper, one unit per step and seed:

1. ``teacher``: the larger network learns S_l (the first N training images, less V) by CE.
2. ``pretrain``: the student learns S_l by CE.
3. The teacher labels the unlabeled pool S_u (the training images after S_l and V),
   hard (its argmax) or soft (its softmax at ``distill.temperature``).
4. Every method starts from the pretrained student and trains on S_l (weight 1, true
   labels) and S_u (teacher labels) with per-example weights on S_u:

   - ``unweighted``: 1;
   - ``weighted``: core's ``DebiasingWeights``, fit on V with the teacher's and the
     student's confidence (§2.2-2.3, Algorithm 2), once before training or before every
     epoch with the current student (``weights.every_epoch``);
   - ``fidelity``: exp(-H_teacher(x) / mean H) (§3.3), set once (it reads only the
     teacher); ``composition``: weighted x fidelity, re-estimated like ``weighted``;
   - ``oracle_filter``: 1 where the teacher is right, 0 where it is wrong (Figure 1's
     upper reference: it uses the hidden labels of S_u).

The student is selected on V's accuracy; test accuracy is reported there. Each
method's result also holds the seconds spent estimating weights (k-NN fit and
predict) and running the student over V and S_u for its confidences, beside the
unit's training time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from metaloss.core import DebiasingWeights, InstanceWeights, composition_weights, fidelity_weights
from metaloss.core.harness import Run, Selected, predict, seed_everything
from metaloss.vision_catalog import WDUE_METHODS, teacher_seed

from ..data import ImageDataset, ImageSplits, load_image_splits, load_train_rows
from ..models import create_model
from ..training import accuracy, eval_batches, fit_images

METHODS = WDUE_METHODS


@dataclass
class Setting:
    """One seed's S_l / V / test (``splits``), S_u, and the teacher's labels on S_u."""

    seed: int
    splits: ImageSplits
    unlabeled: ImageDataset  # un-augmented; its labels are hidden from every method but oracle_filter


@dataclass
class EstimationCost:
    """What setting S_u's weights cost: seconds of k-NN estimation and of student inference, and how often."""

    estimate_s: float = 0.0
    inference_s: float = 0.0
    estimates: int = 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.estimate_s, self.inference_s, self.estimates = (
            state["estimate_s"], state["inference_s"], state["estimates"])


def main(run: Run) -> None:
    cfg = run.config
    accelerator = Accelerator()
    for seed in cfg["seeds"]:
        units = [u for u in (run.unit(m, seed) for m in cfg["methods"]) if not u.done]
        if not units:  # a resumed run: nothing of this seed is left to train
            continue
        setting = make_setting(cfg, seed)
        teacher = train_supervised(run, accelerator, setting, "teacher", cfg["teacher"],
                                   teacher_seed(cfg, seed))
        student = train_supervised(run, accelerator, setting, "pretrain", cfg["student"])
        teacher_facts = {
            **{name: predict_probs(teacher, data, accelerator.device, cfg, cfg["distill"]["temperature"])
               for name, data in (("val", setting.splits.val), ("unlabeled", setting.unlabeled))},
            "test_acc": accuracy(teacher, eval_batches(setting.splits.test, workers=cfg["data"]["workers"]),
                                 accelerator.device),
        }
        for unit in units:
            unit.train_or_load(None, partial(distill, run, accelerator, setting, unit, unit.method, student,
                                             teacher_facts))


def make_setting(cfg: dict, seed: int) -> Setting:
    d = cfg["data"]
    split_seed = seed if d["split_seed"] is None else d["split_seed"]
    splits = load_image_splits(d["name"], d["root"] or None, val_size=d["val_size"],
                               train_limit=d["labeled"] + d["val_size"], test_limit=d["test_limit"] or None,
                               seed=split_seed)
    start = d["labeled"] + d["val_size"]
    unlabeled = load_train_rows(d["name"], start, start + d["unlabeled"], d["root"] or None,
                                mean=splits.mean, std=splits.std)
    return Setting(seed, splits, unlabeled)


def train_supervised(run: Run, accelerator: Accelerator, setting: Setting, name: str, model_cfg: dict,
                     seed: int | None = None):
    """``name`` ("teacher" or "pretrain"): ``model_cfg["arch"]`` trained by CE on S_l, cached as a unit."""
    unit = run.unit(name, setting.seed if seed is None else seed)
    seed_everything(unit.seed)  # before create_model: the initial weights come from the seed too
    model = create_model(model_cfg["arch"], setting.splits)
    splits, cfg = setting.splits, run.config
    unit.train_or_load(model, lambda: fit_images(
        run, unit, model, accelerator=accelerator, train_set=splits.train, splits=splits,
        loss_fn=lambda z, idx, x: F.cross_entropy(z, splits.train.labels[idx].to(z.device)),
        optim=cfg["optim"], epochs=model_cfg["epochs"], workers=cfg["data"]["workers"]))
    return model.to(accelerator.device).eval()


def distill(run, accelerator, setting: Setting, unit, method: str, pretrained, teacher: dict) -> Selected:
    """Step 4 for one method: train a copy of the pretrained student on S_l and teacher-labeled S_u.

    ``teacher``: its probabilities on V (``"val"``) and S_u (``"unlabeled"``), and its test accuracy.
    """
    cfg, splits = run.config, setting.splits
    device, workers = accelerator.device, cfg["data"]["workers"]
    num_l, num_u = len(splits.train), len(setting.unlabeled)
    probs_u = teacher["unlabeled"]
    hard_u = probs_u.argmax(1)
    # one training set: S_l with its labels, then S_u with the teacher's labels (augmented alike)
    images = torch.cat([splits.train.images, setting.unlabeled.images])
    combined = ImageDataset(images, torch.cat([splits.train.labels, hard_u]), splits.train.transform)
    targets = distillation_targets(splits.train.labels, probs_u, cfg["distill"]["labels"])
    weights = InstanceWeights(num_l + num_u, 1, init=1.0, lower=0.0, upper=None)  # S_l's rows stay 1
    rows_u = torch.arange(num_l, num_l + num_u)
    cost = EstimationCost()
    student = create_model(cfg["student"]["arch"], splits)
    student.load_state_dict(pretrained.state_dict())
    seed_everything(unit.seed)

    def estimate(model) -> None:  # the weights of S_u from the current student
        if method in ("unweighted", "oracle_filter"):
            right = (hard_u == setting.unlabeled.labels).float()
            values = torch.ones(num_u) if method == "unweighted" else right
        else:
            start = time.perf_counter()
            student_val = predict_probs(model, splits.val, device, cfg)
            student_u = predict_probs(model, setting.unlabeled, device, cfg)
            cost.inference_s += time.perf_counter() - start
            start = time.perf_counter()
            debias = DebiasingWeights(cfg["weights"]["k"] or None, confidence=cfg["weights"]["confidence"],
                                      teacher_labels=cfg["distill"]["labels"])
            if method == "fidelity":
                values = fidelity_weights(probs_u)
            else:
                debias.fit(teacher["val"], student_val, splits.val.labels)
                values = (debias.weights(probs_u, student_u) if method == "weighted"
                          else composition_weights(debias, probs_u, student_u))
            cost.estimate_s += time.perf_counter() - start
        weights.assign(rows_u, torch.as_tensor(values, dtype=torch.float32)[:, None])
        cost.estimates += 1

    estimate(student)

    def loss_fn(z, idx, x):
        idx = idx.cpu()
        soft_ce = -(targets[idx].to(z.device) * F.log_softmax(z, dim=1)).sum(1)
        return (weights(idx)[:, 0].to(z.device) * soft_ce).mean()

    epochs = cfg["student"]["distill_epochs"]
    # only the weights that read the student's confidence change as it learns; none are
    # needed after the last epoch
    reestimate = cfg["weights"]["every_epoch"] and method in ("weighted", "composition")

    def on_epoch_end(epoch, model):
        if reestimate and epoch + 1 < epochs:
            model.eval()
            estimate(model)
            model.train()

    start = time.perf_counter()
    selected = fit_images(run, unit, student, accelerator=accelerator, train_set=combined, splits=splits,
                          loss_fn=loss_fn, optim=cfg["optim"], epochs=epochs, workers=workers,
                          extra_state={"weights": weights, "cost": cost}, on_epoch_end=on_epoch_end)
    wrong = hard_u != setting.unlabeled.labels
    weights_u = weights.table[num_l:, 0]
    selected.metrics |= {
        "train_s": time.perf_counter() - start,
        "estimate_s": cost.estimate_s, "inference_s": cost.inference_s, "weight_estimates": cost.estimates,
        "teacher_test_acc": teacher["test_acc"],
        "teacher_unlabeled_acc": float(1 - wrong.float().mean()),
        # mean weight where the teacher is wrong / right (a good estimator separates them)
        "weight_teacher_wrong": float(weights_u[wrong].mean()) if wrong.any() else None,
        "weight_teacher_right": float(weights_u[~wrong].mean()) if (~wrong).any() else None}
    return selected


def distillation_targets(labels: torch.Tensor, teacher_probs: torch.Tensor, kind: str) -> torch.Tensor:
    """Target distributions of S_l then S_u: one-hot true labels, then the teacher's labels.

    ``kind``: ``"hard"`` (one-hot of the teacher's argmax) or ``"soft"`` (its probabilities).
    """
    if kind not in ("hard", "soft"):
        raise ValueError(f"distill.labels must be 'hard' or 'soft', got {kind!r}")
    num_classes = teacher_probs.shape[1]
    if labels.numel() and int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), the teacher's classes; "
                         f"got max {int(labels.max())}")
    unlabeled = teacher_probs if kind == "soft" else F.one_hot(teacher_probs.argmax(1), num_classes).float()
    return torch.cat([F.one_hot(labels, num_classes).float(), unlabeled.float()])


def predict_probs(model, dataset, device, cfg: dict, temperature: float = 1.0) -> torch.Tensor:
    """Softmax of ``model``'s logits / ``temperature`` over ``dataset``, in order."""
    batches = eval_batches(dataset, workers=cfg["data"]["workers"])
    return F.softmax(predict(model, (x for x, _ in batches), device) / temperature, dim=1)

