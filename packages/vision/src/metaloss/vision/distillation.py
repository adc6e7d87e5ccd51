"""Knowledge distillation on images: guides, students and their mixed losses (AMAL paper §4.1, §5.1-5.2).

The parts the ``kd``, ``train_teacher`` and ``coreset`` recipes (and the
benchmarks) build from:

- ``METHODS``: each method's guides and how the primary loss (CE on the training
  label) and the K guide losses (tau^2 KL, Hinton et al. 2015) are mixed per
  example: ``none`` (CE only), ``fixed`` ((1 - lambda_a) CE + lambda_a / K KD each),
  ``dropout`` (DGKD's guide dropout, Son et al. 2021) or ``amal`` (AMAL eq. 2).
- ``Setting``: one seed's data with its (possibly noisy) training labels.
- ``Guides``: the models students distil from, each a unit of the run, trained
  once per seed: the teacher ("teacher"), TAKD's chain assistants ("ta-<arch>",
  each from the model before it), DGKD's dense assistants ("dgta-<arch>", from
  the teacher and every larger assistant with guide dropout) and a CE-trained
  copy of the student ("self").
- ``distillation_losses`` / ``mixed_loss``: the (B, 1 + K) loss matrix and its mix,
  shared with the ``kd_digits`` recipe.
- ``fit_student`` / ``train_student``: one model trained on the labels and guides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from accelerate import Accelerator

from metaloss.core import (
    AMAL,
    cross_entropy,
    dropout_mix_weights,
    fixed_mix_weights,
    kd_loss,
    mix_losses,
    trust_by_group,
)
from metaloss.core.checks import check_choice, check_unit_interval
from metaloss.core.harness import Run, Selected, atomic_write, open_run, predict, seed_everything
from metaloss.vision_catalog import METHODS, teacher_seed

from .data import ImageSplits, eval_transform, load_image_splits, make_loader
from .models import create_model
from .noise import corrupt_labels
from .training import fit_images

MIXINGS = ("none", "fixed", "dropout", "amal")


@dataclass
class Setting:
    """One seed's data, with the (possibly noisy) training labels addressed by dataset index."""

    seed: int
    splits: ImageSplits
    labels: torch.Tensor  # training labels the models learn from
    noisy: torch.Tensor  # bool mask of corrupted training labels


def scaled_epochs(cfg: dict) -> dict:
    """Epoch counts after ``schedule_scale`` (one key scales the whole schedule for CPU runs)."""
    scale = cfg["schedule_scale"]
    check_unit_interval("schedule_scale", scale, low_open=True)

    def s(epochs: int) -> int:
        return max(1, round(epochs * scale))

    return {
        "teacher": s(cfg["teacher"]["epochs"]),
        "student": s(cfg["student"]["epochs"]),
        "snapshots": [s(e) for e in cfg["teacher"]["snapshot_epochs"]],
        "amal_every": s(cfg["amal"]["every"]) if cfg["amal"]["unit"] == "epoch" else cfg["amal"]["every"],
    }


def milestones_for(cfg: dict, num_epochs: int) -> list[int]:
    """``optim.milestones`` (epochs of the student's schedule) stretched to a model of ``num_epochs``."""
    return [max(1, round(m / cfg["student"]["epochs"] * num_epochs)) for m in cfg["optim"]["milestones"]]


def make_setting(cfg: dict, seed: int) -> Setting:
    d = cfg["data"]
    split_seed = seed if d["split_seed"] is None else d["split_seed"]
    splits = load_image_splits(
        d["name"], d["root"], val_size=d["val_size"] or None, train_limit=d["train_limit"] or None,
        test_limit=d["test_limit"] or None, seed=split_seed,
    )
    features = splits.train.features(splits.mean, splits.std) if d["noise"] == "instance" else None
    noisy_labels, noisy = corrupt_labels(d["noise"], splits.train.labels, d["label_noise"],
                                         splits.num_classes, seed=seed, features=features)
    return Setting(seed, splits, noisy_labels, noisy)


class Guides:
    """The models students distil from, trained on demand once per seed and cached in the run."""

    def __init__(self, run: Run, accelerator: Accelerator, setting: Setting, epochs: dict):
        self.run, self.accelerator, self.setting, self.epochs = run, accelerator, setting, epochs
        self._models: dict[str, torch.nn.Module] = {}

    def for_method(self, method: str) -> list[torch.nn.Module]:
        kind = METHODS[method][0]
        if kind == "none":
            return []
        if kind == "teacher":
            return [self.get("teacher")]
        if kind == "self":
            return [self.get("self")]
        if kind == "snapshots":
            self.get("teacher")
            return [self._snapshot(e) for e in self.epochs["snapshots"]] + [self.get("teacher")]
        prefix = "dgta-" if kind == "dense" else "ta-"
        assistants = [f"{prefix}{arch}" for arch in self.run.config["assistants"]]
        if kind == "chain":
            return [self.get(assistants[-1])]
        return [self.get("teacher")] + [self.get(a) for a in assistants]

    def get(self, name: str) -> torch.nn.Module:
        if name not in self._models:
            self._models[name] = self._train(name)
        return self._models[name]

    def _train(self, name: str) -> torch.nn.Module:
        cfg, seed, setting = self.run.config, self.setting.seed, self.setting
        if name == "teacher":
            arch, guides, seed = cfg["teacher"]["arch"], [], teacher_seed(cfg, seed)
            if cfg["teacher"]["labels"] == "clean":  # a teacher that learnt from uncorrupted labels
                setting = replace(setting, labels=setting.splits.train.labels)
        elif name == "self":
            arch, guides = cfg["student"]["arch"], []
        else:  # an assistant: TAKD learns from the previous model only, DGKD from all before it
            prefix, arch = name.split("-", 1)
            chain = ["teacher"] + [f"{prefix}-{a}" for a in cfg["assistants"]]
            before = chain[:chain.index(name)]
            guides = [self.get(g) for g in (before if prefix == "dgta" else before[-1:])]
        seed_everything(seed)  # before create_model: the initial weights come from the seed too
        model = create_model(arch, self.setting.splits)
        if name == "teacher" and cfg["teacher"]["from_run"]:
            model.load_state_dict(open_run(cfg["teacher"]["from_run"]).unit("teacher", seed).selected_model())
        else:
            unit = self.run.unit(name, seed)
            snapshots = self.epochs["snapshots"] if name == "teacher" else []
            mixing = "dropout" if name.startswith("dgta-") else "fixed" if guides else "none"
            unit.train_or_load(model, lambda: fit_student(
                self.run, self.accelerator, setting, unit, model, guides, mixing, self.epochs["teacher"],
                on_epoch_end=self._snapshot_saver(snapshots)))
        return model.to(self.accelerator.device).eval()

    def _source_dir(self) -> Path:
        """The run that trained the teacher: ``teacher.from_run`` (a train_teacher run), else this one."""
        return Path(self.run.config["teacher"]["from_run"] or self.run.dir)

    def _snapshot_path(self, epoch: int) -> Path:
        seed = teacher_seed(self.run.config, self.setting.seed)
        return self._source_dir() / "snapshots" / f"teacher-seed{seed}-epoch{epoch}.pt"

    def _snapshot_saver(self, epochs: list[int]):
        def save(epoch: int, model: torch.nn.Module) -> None:
            # snapshot "after E epochs" = after the epoch with 0-based index E - 1
            if epoch + 1 in epochs and self.run.is_main:
                state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                atomic_write(self._snapshot_path(epoch + 1), lambda tmp: torch.save(state, tmp))
        return save

    def _snapshot(self, epoch: int) -> torch.nn.Module:
        path = self._snapshot_path(epoch)
        if not path.exists():
            raise FileNotFoundError(
                f"no teacher snapshot after {epoch} epochs at {path}: the teacher unit finished without "
                "it (was teacher.snapshot_epochs changed after the teacher was trained?)"
            )
        model = create_model(self.run.config["teacher"]["arch"], self.setting.splits)
        model.load_state_dict(torch.load(path, map_location="cpu"))
        return model.to(self.accelerator.device).eval()


def train_student(run, accelerator, setting: Setting, guides: Guides, method: str,
                  epochs: dict) -> torch.Tensor | None:
    """Train (or load) one student of ``method``; return its AMAL lambda table (None for other methods)."""
    guide_models = guides.for_method(method)
    unit = run.unit(method, setting.seed)
    seed_everything(setting.seed)
    student = create_model(run.config["student"]["arch"], setting.splits)
    mixing = METHODS[method][1]
    amal = None
    if mixing == "amal":
        amal = make_amal(run.config, len(setting.labels), len(guide_models), epochs)

    def train() -> Selected:
        selected = fit_student(run, accelerator, setting, unit, student, guide_models, mixing,
                               epochs["student"], amal=amal)
        if amal is not None and setting.noisy.any():
            selected.metrics |= trust_by_group(amal.weights.table.cpu(), {"label_noisy": setting.noisy})
        return selected

    unit.train_or_load(student, train, restore=None if amal is None else {"amal": amal})
    return None if amal is None else amal.weights.table.cpu()


def make_amal(cfg: dict, num_examples: int, num_guides: int, epochs: dict) -> AMAL:
    a = cfg["amal"]
    init = a["init"]
    if num_guides > 1:  # the paper's lambda_a split across the K guides
        init = [init[0]] + [init[1] / num_guides] * num_guides
    return AMAL(num_examples, num_guides, lr=a["lr"], every=epochs["amal_every"], unit=a["unit"],
                inner_steps=a["inner_steps"], init=init, mode=a["mode"], normalize=a["normalize"])


def distillation_losses(logits: torch.Tensor, labels: torch.Tensor, guide_logits: list[torch.Tensor],
                        tau: float) -> torch.Tensor:
    """(B, 1 + K) per-example losses: CE on the training label, then tau^2 KL to each guide."""
    columns = [cross_entropy(logits, labels)] + [kd_loss(logits, t, tau) for t in guide_logits]
    return torch.stack(columns, dim=1)


def mixed_loss(per_example: torch.Tensor, mixing: str, indices: torch.Tensor, *, amal: AMAL | None = None,
               lambda_a: float = 0.9, drop_prob: float = 0.0) -> torch.Tensor:
    """The batch's training loss: ``per_example`` (B, 1 + K) mixed by ``mixing`` (one of ``MIXINGS``)."""
    check_choice("mixing", mixing, MIXINGS)
    if mixing == "none":
        return per_example[:, 0].mean()
    if mixing == "amal":
        if amal is None:
            raise ValueError("mixing 'amal' needs the AMAL object (amal=...)")
        return amal.loss(indices.to(per_example.device), per_example)
    k = per_example.shape[1] - 1
    if mixing == "fixed":
        weights = fixed_mix_weights(len(indices), k, lambda_a)
    else:  # "dropout"
        weights = dropout_mix_weights(len(indices), k, lambda_a, drop_prob)
    return mix_losses(per_example, weights.to(per_example))


def fit_student(run, accelerator, setting: Setting, unit, model, guides, mixing, num_epochs,
                amal=None, on_epoch_end=None, subset: torch.Tensor | None = None) -> Selected:
    """Train ``model`` on the training labels and the ``guides``, mixed by ``mixing``.

    ``subset``: train on these training-set indices only (the coreset recipe).
    """
    cfg = run.config
    optim = {**cfg["optim"], "milestones": milestones_for(cfg, num_epochs)}
    splits, labels = setting.splits, setting.labels
    device = accelerator.device
    workers = cfg["data"]["workers"]

    cached = None
    if cfg["kd"]["cache_guides"] and guides:
        cached = guide_logits_table(guides, splits, device, workers)

    def losses(z, idx, x):
        if cached is None:
            with torch.no_grad():
                guide_logits = [g(x) for g in guides]
        else:
            guide_logits = [table[idx.cpu()].to(device) for table in cached]
        return distillation_losses(z, labels[idx.cpu()].to(device), guide_logits, cfg["kd"]["tau"])

    def loss_fn(z, idx, x):
        return mixed_loss(losses(z, idx, x), mixing, idx, amal=amal, lambda_a=cfg["kd"]["lambda_a"],
                          drop_prob=cfg["dgkd"]["drop_prob"])

    return fit_images(run, unit, model, accelerator=accelerator, train_set=splits.train, splits=splits,
                      loss_fn=loss_fn, optim=optim, epochs=num_epochs, workers=workers, indices=subset,
                      amal=amal, amal_losses=losses, on_epoch_end=on_epoch_end)


def guide_logits_table(guides, splits: ImageSplits, device, workers: int) -> list[torch.Tensor]:
    """Each guide's logits on every training image without augmentation, by dataset index.

    ``kd.cache_guides`` trades the faithful KD target (the guide on the same
    augmented batch as the student) for one pass over the data: on a CPU the
    guide's forward costs more than the student's training step.
    """
    clean = splits.train.with_transform(eval_transform(splits.mean, splits.std))
    loader = make_loader(clean, 512, train=False, workers=workers, seed=0, epoch=0, return_index=True)
    order, per_guide = [], [[] for _ in guides]
    for idx, x, _ in loader:
        order.append(idx)
        for logits, guide in zip(per_guide, guides):
            logits.append(predict(guide, [x], device))
    order = torch.cat(order)
    if not torch.equal(order.sort().values, torch.arange(len(clean))):
        raise RuntimeError("the evaluation loader did not visit every training image exactly once")
    tables = []
    for logits in per_guide:
        table = torch.empty(len(clean), logits[0].shape[1])
        table[order] = torch.cat(logits)
        tables.append(table)
    return tables
