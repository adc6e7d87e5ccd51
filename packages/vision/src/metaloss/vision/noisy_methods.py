"""Learning from noisy labels: the methods of the ``noisy_labels`` stage, one function each.

Every method trains one model (co-teaching: a pair) on ``NoisyData`` with the same schedule, and
its epoch is selected on the noisy validation split (``training.fit_images``):

- ``ce``: cross-entropy on the noisy labels.
- ``gce``: generalized cross-entropy L_q (Zhang & Sabuncu 2018, q = 0.7), a robust loss.
- ``coteaching``: two networks; each keeps the R(T) small-loss examples of a batch for its peer
  (Han et al. 2018, Algorithm 1; core's ``small_loss_mask`` and ``coteaching_keep_ratio``).
- ``l2rw``: per-batch weights from core's ``l2r_weights`` against a batch of the clean meta set
  (Ren et al. 2018); the loss is sum_i w_i l_i.
- ``mwnet``: core's ``MetaWeightNet`` takes one meta step per batch on the clean meta set, then the
  model trains on mean_i V(l_i) l_i (Shu et al. 2019, eqs. 3-5).
- ``dml`` / ``dml_2nd``: DML (issue 14): a teacher of the same family learns from its student's
  feedback through core's ``MetaFeedback`` (first / second order); no clean data. The student is the
  model that is evaluated and selected; the teacher, its optimizer and schedule, and R_t(c) are
  checkpointed. The first ``dml.warmup_epochs`` (scaled) select every example.
- ``dln`` / ``l2t_dln`` (and ``*_dr``): L2T-DLN (issue 15): the model trains on core's learned loss
  ``DynamicLossNetwork``, which a teacher reshapes each window of K = ``l2t_dln.unroll_steps``
  batches from the clean meta set's CE after K look-ahead steps (core's ``L2TDLN``): Adam on the
  DLN's hypergradient (``dln``, the supplement's "DLN" row of Table 3) or the LSTM teacher
  (``l2t_dln``). ``_dr`` adds §5's data reweighting: each batch's weights from the SNR of its
  embeddings to their label's centre among the meta set's embeddings (recomputed every epoch).
  The DLN, the LSTM and its states, and the DLN's loss surface after every epoch are checkpointed.
- ``confident_learning``: out-of-fold predicted probabilities from k models of the same family
  (each its own unit of the run, ``cl_fold<k>``), cleanlab's ``find_label_issues``, then CE on the
  examples it keeps (Northcutt et al. 2021).

The clean labels never reach a method: ``Diagnostics`` holds them and turns what a method chose
(a selection, or weights) into metrics and histograms after the fact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from metaloss.core import (
    L2TDLN,
    DynamicLossNetwork,
    InstanceWeights,
    Lookahead,
    MetaFeedback,
    MetaWeightNet,
    TeachingSchedule,
    TeachStep,
    class_centres,
    coteaching_keep_ratio,
    cross_entropy,
    generalized_cross_entropy,
    l2r_weights,
    resolve_split,
    similarity_weights,
    small_loss_mask,
)
from metaloss.core.harness import Run, Selected, Unit, predict, seed_everything

from .data import ImageDataset
from .models import create_model
from .noisy_data import LabelTruth, NoisyData
from .training import accuracy, eval_batches, fit_images, make_optimizer


class Diagnostics:
    """What a method selected or weighted, measured against the clean labels (never fed back).

    ``selected(indices, mask)`` accumulates the epoch's selection; ``epoch_metrics()`` returns its
    precision (share of selected examples whose training label is clean) and size, and resets.
    ``weighted(indices, weights)`` keeps each example's latest weight in ``weights`` (checkpointed;
    NaN for rows this process never saw). ``pseudo_labelled(indices, labels)`` measures a teacher's
    pseudo labels (DML's y_bar) against the clean labels: ``pseudo_label_accuracy`` of the epoch,
    beside ``given_label_accuracy``, the same batches' training labels (1 - the noise they carry).
    Without a truth (``truth=None``) nothing is measured.
    Under several processes each measures its own batches, and rank 0's share is what is logged.
    """

    def __init__(self, truth: LabelTruth | None, num_examples: int):
        self.truth = truth
        self.weights = InstanceWeights(num_examples, 1, init=float("nan"), lower=None)
        self._selected = self._clean = self._seen = 0
        self._pseudo_right = self._given_right = self._pseudo_seen = 0

    def selected(self, indices: torch.Tensor, mask: torch.Tensor) -> None:
        if self.truth is None:
            return
        chosen = indices.cpu()[mask.cpu()]
        self._selected += len(chosen)
        self._clean += int((~self.truth.corrupted[chosen]).sum())
        self._seen += len(indices)

    def pseudo_labelled(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        if self.truth is None:
            return
        rows = indices.cpu()
        clean = self.truth.labels[rows]
        self._pseudo_right += int((labels.cpu() == clean).sum())
        self._given_right += int((~self.truth.corrupted[rows]).sum())
        self._pseudo_seen += len(rows)

    def weighted(self, indices: torch.Tensor, weights: torch.Tensor) -> None:
        self.weights.assign(indices.cpu(), weights.detach().float().cpu()[:, None])

    def epoch_metrics(self) -> dict:
        metrics = {}
        if self._seen:
            metrics.update(selected_precision=self._clean / max(self._selected, 1),
                           selected_fraction=self._selected / self._seen)
        if self._pseudo_seen:
            metrics.update(pseudo_label_accuracy=self._pseudo_right / self._pseudo_seen,
                           given_label_accuracy=self._given_right / self._pseudo_seen)
        self._selected = self._clean = self._seen = 0
        self._pseudo_right = self._given_right = self._pseudo_seen = 0
        return metrics

    def subset_metrics(self, rows: torch.Tensor) -> dict:
        """Precision of a one-off selection (confident learning's kept examples)."""
        if self.truth is None:
            return {}
        return {"selected_precision": float((~self.truth.corrupted[rows]).float().mean())}

    def state_dict(self) -> dict:
        return {"weights": self.weights.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.weights.load_state_dict(state["weights"])


class CoTeachingPair(nn.Module):
    """Two networks trained together. In training mode ``forward`` returns both logits ``(z1, z2)``
    (so one DDP forward covers both, as torchvision's Inception returns aux logits while training);
    in eval mode it returns the first network's logits, the one that is evaluated and selected."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second

    def forward(self, x):
        return (self.first(x), self.second(x)) if self.training else self.first(x)


class MetaBatches:
    """Random batches of the clean meta set (normalised, un-augmented), drawn from torch's global RNG,
    which every checkpoint saves, so a resumed run draws the same batches."""

    def __init__(self, meta: ImageDataset, batch_size: int, device):
        x, y = _stack(meta)
        self.x, self.y, self.batch_size = x.to(device), y.to(device), min(batch_size, len(meta))

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randperm(len(self.y))[: self.batch_size].to(self.y.device)
        return self.x[rows], self.y[rows]


def _stack(dataset: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(eval_batches(dataset, workers=0))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


@dataclass
class NoisyTrainer:
    """One seed's shared pieces: the run, the data a method may read, the schedule and the settings."""

    run: Run
    accelerator: Accelerator
    data: NoisyData
    cfg: dict

    @property
    def select_balanced(self) -> bool:
        """Balanced validation accuracy selects the epoch: asked for, or ``auto`` with a long tail."""
        choice = self.cfg["selection"]
        return choice == "balanced_accuracy" or (choice == "auto" and self.cfg["imbalance_ratio"] > 1)

    @property
    def epochs(self) -> int:
        return scaled(self.cfg["model"]["epochs"], self.cfg["schedule_scale"])

    def optim(self) -> dict:
        scale = self.cfg["schedule_scale"]
        milestones = [scaled(m, scale) for m in self.cfg["optim"]["milestones"]]
        return {**self.cfg["optim"], "milestones": milestones}

    def new_model(self, unit: Unit) -> nn.Module:
        seed_everything(unit.seed)  # the initial weights come from the seed too
        return create_model(self.cfg["model"]["arch"], self.data)

    def fit(self, unit: Unit, model: nn.Module, diagnostics: Diagnostics | None = None, *,
            epochs: int | None = None, indices: torch.Tensor | None = None, state: dict | None = None,
            more_metrics: Callable[[], dict] | None = None, **fit_kwargs) -> Selected:
        """Train ``model`` for ``unit`` (checkpointing ``diagnostics`` and ``state`` with it; logging
        ``more_metrics()`` after each epoch); add the last epoch's test accuracy and the meta set's
        size to what was selected."""
        extra = {**({"diagnostics": diagnostics} if diagnostics is not None else {}), **(state or {})}

        def monitor() -> dict:
            measured = diagnostics.epoch_metrics() if diagnostics else {}
            return {**measured, **(more_metrics() if more_metrics else {})}

        selected = fit_images(self.run, unit, model, accelerator=self.accelerator, train_set=self.data.train,
                              splits=self.data, optim=self.optim(), epochs=epochs or self.epochs,
                              workers=self.cfg["data"]["workers"], indices=indices, test_every_epoch=True,
                              monitor=monitor, extra_state=extra, select_balanced=self.select_balanced,
                              **fit_kwargs)
        selected.metrics["last_test_acc"] = accuracy(
            model, eval_batches(self.data.test, workers=self.cfg["data"]["workers"]), self.accelerator.device)
        selected.metrics["meta_size"] = self.data.meta_size
        return selected

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch of each process (the loader's share of each process)."""
        per_process = len(self.data.train) // self.accelerator.num_processes
        return math.ceil(per_process / self.cfg["optim"]["batch_size"])

    def labels_of(self, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.data.train.labels[indices.cpu()].to(like.device)


def train_ce(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics) -> Selected:
    return t.fit(unit, t.new_model(unit), loss_fn=lambda z, idx, x: F.cross_entropy(z, t.labels_of(idx, z)))


def train_gce(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics) -> Selected:
    q = t.cfg["gce"]["q"]
    return t.fit(unit, t.new_model(unit),
                 loss_fn=lambda z, idx, x: generalized_cross_entropy(z, t.labels_of(idx, z), q).mean())


def train_coteaching(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics) -> Selected:
    settings = t.cfg["coteaching"]
    forget = t.data.noise_rate if settings["forget_rate"] is None else settings["forget_rate"]
    warmup = scaled(settings["warmup_epochs"], t.cfg["schedule_scale"])
    keep = {"ratio": 1.0}
    pair = CoTeachingPair(t.new_model(unit), create_model(t.cfg["model"]["arch"], t.data))

    def start(epoch: int) -> None:
        keep["ratio"] = coteaching_keep_ratio(epoch, forget, warmup)

    def loss_fn(z, idx, x):
        (z1, z2), y = z, t.labels_of(idx, z[0])
        l1, l2 = cross_entropy(z1, y), cross_entropy(z2, y)
        pick1, pick2 = small_loss_mask(l1, keep["ratio"]), small_loss_mask(l2, keep["ratio"])
        diagnostics.selected(idx, pick1)
        # each network learns from the examples its peer found easy (Han et al., Algorithm 1 step 5-6)
        return l1[pick2].mean() + l2[pick1].mean()

    return t.fit(unit, pair, diagnostics, loss_fn=loss_fn, on_epoch_start=start)


def train_l2rw(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics) -> Selected:
    meta_settings = t.cfg["reweighting"]

    def build_loss(model: nn.Module, optimizer) -> Callable:
        meta = MetaBatches(t.data.meta, meta_settings["meta_batch"], t.accelerator.device)

        def loss_fn(z, idx, x):
            y = t.labels_of(idx, z)
            x_meta, y_meta = meta.next()
            weights = l2r_weights(model, x, lambda out: cross_entropy(out, y),
                                  x_meta, lambda out: F.cross_entropy(out, y_meta),
                                  lookahead=Lookahead.from_optimizer(optimizer), mode=meta_settings["mode"])
            diagnostics.weighted(idx, weights * len(idx))  # mean 1 over a batch, comparable across batches
            return (weights.to(z) * cross_entropy(z, y)).sum()

        return loss_fn

    return t.fit(unit, t.new_model(unit), diagnostics, build_loss=build_loss)


def train_mwnet(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics) -> Selected:
    settings, meta_settings = t.cfg["mwnet"], t.cfg["reweighting"]
    model = t.new_model(unit)  # seeds the RNG: V's initial weights come from the seed too
    vnet = MetaWeightNet(settings["hidden"], lr=settings["lr"], weight_decay=settings["weight_decay"])
    vnet.to(t.accelerator.device)

    def build_loss(model: nn.Module, optimizer) -> Callable:
        meta = MetaBatches(t.data.meta, meta_settings["meta_batch"], t.accelerator.device)

        def loss_fn(z, idx, x):
            y = t.labels_of(idx, z)
            x_meta, y_meta = meta.next()
            vnet.meta_step(model, x, lambda out: cross_entropy(out, y),
                           x_meta, lambda out: F.cross_entropy(out, y_meta),
                           lookahead=Lookahead.from_optimizer(optimizer), mode=meta_settings["mode"])
            losses = cross_entropy(z, y)
            weights = vnet(losses)
            diagnostics.weighted(idx, weights)
            return (weights.detach() * losses).mean()

        return loss_fn

    return t.fit(unit, model, diagnostics, build_loss=build_loss, state={"vnet": vnet})


def train_dml(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics, order: str = "first_order") -> Selected:
    settings = t.cfg["dml"]
    warmup = scaled(settings["warmup_epochs"], t.cfg["schedule_scale"]) if settings["warmup_epochs"] else 0
    student = t.new_model(unit)  # seeds the RNG: the teacher's initial weights come from the seed too
    arch = settings["teacher_arch"] or t.cfg["model"]["arch"]
    teacher = create_model(arch, t.data).to(t.accelerator.device)
    teacher_optimizer, teacher_schedule = make_optimizer(teacher, t.optim(), t.epochs)
    feedback = MetaFeedback(teacher, teacher_optimizer, t.data.num_classes, epsilon0=settings["epsilon0"],
                            lam=settings["lam"], temperature=settings["temperature"], alpha=settings["alpha"],
                            label_smoothing=settings["label_smoothing"], order=order,
                            feedback=settings["feedback"], group_by=settings["group_by"],
                            warmup_steps=warmup * t.steps_per_epoch)

    epoch_ratios: list[torch.Tensor] = []  # R_t(c) after each step of the current epoch

    def build_step(model: nn.Module, optimizer) -> Callable:
        def step(idx, x):
            out = feedback.step(model, optimizer, x, t.labels_of(idx, x))
            diagnostics.selected(idx, out.selected)
            diagnostics.pseudo_labelled(idx, out.pseudo_labels)
            epoch_ratios.append(feedback.ratios.clone())
            return out.student_loss

        return step

    def ratios() -> dict:
        """The epoch's mean R_t(c) per class (DML Figure 4c; one batch's ratios jump), H_t, and the
        teacher's accuracy on the noisy validation split (how good the source of y_bar is)."""
        mean = torch.stack(epoch_ratios).mean(0) if epoch_ratios else feedback.ratios
        epoch_ratios.clear()
        teacher_val = accuracy(teacher, eval_batches(t.data.val, workers=t.cfg["data"]["workers"]),
                               t.accelerator.device)
        return {"feedback_sum": feedback.accumulated_feedback, "teacher_val_acc": teacher_val,
                **{f"ratio_{c}": float(r) for c, r in enumerate(mean)}}

    return t.fit(unit, student, diagnostics, build_step=build_step, more_metrics=ratios,
                 on_epoch_end=lambda epoch, model: teacher_schedule.step(),
                 state={"teacher": teacher, "meta_feedback": feedback, "teacher_schedule": teacher_schedule})


class DLNSurfaces:
    """The DLN's value over a grid of pairs (sigma(z_y), sigma(z_j)) after each epoch (checkpointed), for
    the plot of how the teacher reshaped the loss."""

    GRID = torch.linspace(0.0, 1.0, 21)

    def __init__(self):
        self.surfaces: list[torch.Tensor] = []

    @torch.no_grad()
    def record(self, dln: DynamicLossNetwork) -> None:
        like = next(dln.parameters())
        pairs = torch.stack(torch.meshgrid(self.GRID, self.GRID, indexing="ij"), dim=-1).to(like)
        self.surfaces.append(dln.pair_loss(pairs).cpu())

    def state_dict(self) -> dict:
        return {"surfaces": [s.clone() for s in self.surfaces]}

    def load_state_dict(self, state: dict) -> None:
        self.surfaces = [torch.as_tensor(s) for s in state["surfaces"]]


def train_l2t_dln(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics, *, teacher: str,
                  reweight: bool, surfaces: DLNSurfaces | None = None) -> Selected:
    settings = t.cfg["l2t_dln"]
    surfaces = surfaces if surfaces is not None else DLNSurfaces()
    model = t.new_model(unit)
    device = t.accelerator.device
    l2t = L2TDLN(DynamicLossNetwork(init=settings["init"], seed=unit.seed).to(device), teacher=teacher,
                 dln_lr=settings["dln_lr"], teacher_lr=settings["teacher_lr"])
    meta_x, meta_y = _stack(t.data.meta) if reweight else (None, None)  # for the class centres
    schedule = TeachingSchedule(l2t, settings["unroll_steps"], settings["teach_every"])
    seen = {"batches": 0}
    logged: dict[str, list[float]] = {}
    centres: dict[str, torch.Tensor] = {}

    def start(epoch: int) -> None:
        seen["batches"] = 0
        schedule.new_epoch()
        if not surfaces.surfaces:
            surfaces.record(l2t.dln)  # the start of training
        if reweight:  # the meta set's class centres in the student's embedding space, once per epoch
            features = _embed(model, meta_x, device)
            centres["value"] = class_centres(features, meta_y.to(device), t.data.num_classes)

    def build_step(model: nn.Module, optimizer) -> Callable:
        meta = MetaBatches(t.data.meta, settings["val_batch"], device)

        def step(idx, x):
            y = t.labels_of(idx, x)
            weights = None
            if reweight:
                weights = similarity_weights(_embed(model, x, device), y, centres["value"],
                                             metric=settings["similarity"])
                diagnostics.weighted(idx, weights * len(idx))  # mean 1 over a batch
            seen["batches"] += 1
            batch = (x, y) if weights is None else (x, y, weights)
            last = seen["batches"] == t.steps_per_epoch
            stats = schedule.step(model, optimizer, batch, meta.next, last=last)
            if stats is None:
                return None  # gathering the window: the student steps when it is full
            if isinstance(stats, TeachStep):
                for key in ("dln_grad_norm", "dln_change", "val_loss")[:3 if teacher == "lstm" else 2]:
                    logged.setdefault(key, []).append(getattr(stats, key))
                stats = stats.student
            logged.setdefault("dln_logit_gradient", []).append(stats.dln_logit_gradient)
            logged.setdefault("ce_logit_gradient", []).append(stats.ce_logit_gradient)
            return stats.loss

        return step

    def end(epoch: int, model: nn.Module) -> None:
        schedule.new_epoch()  # refuses batches left over
        surfaces.record(l2t.dln)

    def epoch_means() -> dict:
        means = {("teach_" if k == "val_loss" else "") + k: sum(v) / len(v) for k, v in logged.items() if v}
        logged.clear()
        return means

    return t.fit(unit, model, diagnostics, build_step=build_step, on_epoch_start=start, on_epoch_end=end,
                 more_metrics=epoch_means, state={"l2t_dln": l2t, "dln_surfaces": surfaces})


@torch.no_grad()
def _embed(model: nn.Module, x: torch.Tensor, device) -> torch.Tensor:
    """The model's penultimate features in eval mode (no BatchNorm update), in batches of 500."""
    features_fn, _ = resolve_split(model)
    was_training = model.training
    model.eval()
    features = torch.cat([features_fn(chunk.to(device)) for chunk in x.split(500)])
    model.train(was_training)
    return features


def out_of_fold_probs(t: NoisyTrainer, seed: int) -> torch.Tensor:
    """(N, C) predicted probabilities of every training example from the model that did not see it.

    k folds, stratified by the noisy label and seeded; fold f's model (unit ``cl_fold<f>``) trains by
    CE on the other folds and is selected on the noisy validation split like every method.
    """
    settings = t.cfg["confident_learning"]
    labels = t.data.train.labels
    folds = stratified_folds(labels, settings["folds"], seed=seed)
    plain = t.data.train.with_transform(t.data.val.transform)
    probs = torch.zeros(len(labels), t.data.num_classes)
    epochs = scaled(settings["fold_epochs"], t.cfg["schedule_scale"])
    for f in range(settings["folds"]):
        held_out = folds == f
        unit = t.run.unit(f"cl_fold{f}", seed)
        model = t.new_model(unit)
        unit.train_or_load(model, lambda unit=unit, model=model, held_out=held_out: t.fit(
            unit, model, epochs=epochs, indices=(~held_out).nonzero().flatten(),
            loss_fn=lambda z, idx, x: F.cross_entropy(z, t.labels_of(idx, z))))
        rows = held_out.nonzero().flatten()
        batches = (x for x, _ in eval_batches(plain.subset(rows), workers=t.cfg["data"]["workers"]))
        probs[rows] = F.softmax(predict(model, batches, t.accelerator.device), dim=1)
    return probs


def train_confident_learning(t: NoisyTrainer, unit: Unit, diagnostics: Diagnostics) -> Selected:
    from metaloss.core.optional import import_extra

    cleanlab_filter = import_extra("cleanlab.filter", "cleanlab", package="metaloss-vision")
    probs = out_of_fold_probs(t, unit.seed)
    issues = cleanlab_filter.find_label_issues(t.data.train.labels.numpy(), probs.numpy())
    kept = torch.from_numpy(~issues).nonzero().flatten()
    selected = t.fit(unit, t.new_model(unit), indices=kept,
                     loss_fn=lambda z, idx, x: F.cross_entropy(z, t.labels_of(idx, z)))
    selected.metrics |= {"selected_fraction": len(kept) / len(issues), **diagnostics.subset_metrics(kept)}
    return selected


def stratified_folds(labels: torch.Tensor, folds: int, *, seed: int) -> torch.Tensor:
    """Fold number (0..folds-1) of every example: each class dealt round-robin in a seeded random order."""
    g = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=g)]
        fold[members] = torch.arange(len(members)) % folds
    return fold


def scaled(epochs: int, scale: float) -> int:
    """An epoch count of the paper's schedule at ``schedule_scale`` (at least 1)."""
    return max(1, round(epochs * scale))


METHOD_TRAINERS: dict[str, Callable[[NoisyTrainer, Unit, Diagnostics], Selected]] = {
    "ce": train_ce,
    "gce": train_gce,
    "coteaching": train_coteaching,
    "l2rw": train_l2rw,
    "mwnet": train_mwnet,
    "confident_learning": train_confident_learning,
    "dml": train_dml,
    "dml_2nd": partial(train_dml, order="second_order"),
    "dln": partial(train_l2t_dln, teacher="adam", reweight=False),
    "dln_dr": partial(train_l2t_dln, teacher="adam", reweight=True),
    "l2t_dln": partial(train_l2t_dln, teacher="lstm", reweight=False),
    "l2t_dln_dr": partial(train_l2t_dln, teacher="lstm", reweight=True),
}
