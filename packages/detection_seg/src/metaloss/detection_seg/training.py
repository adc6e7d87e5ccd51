"""The training loop the detection and segmentation recipes share.

A ``DenseTask`` holds what differs between the two (the model, its standard loss, the DLN inside
that loss, the teacher's validation loss, the evaluation); ``fit_dense`` trains one (method, seed)
unit with it. Methods (``detection_seg_catalog.METHODS``): ``standard`` trains on the model's own
loss; ``dln`` and ``l2t_dln`` on the loss whose class term is core's ``DynamicLossNetwork``, which
core's ``L2TDLN`` adjusts every window of K batches (``TeachingSchedule``) from the validation loss
on the held-out *meta* images, by Adam (``dln``) or by the LSTM teacher (``l2t_dln``); ``amal``
(tasks with loss parts) weights each training image's parts by core's ``AMAL`` (AMAL eq. 2),
starting from the standard loss's equal weights, with a meta phase every L epochs whose one-step
look-ahead hypergradient (eqs. 4-6, whole model) comes from the same meta images. The epoch is
selected on a second held-out split (``val``) that no method learns from; the test split (COCO
val2017) is measured after each epoch whose validation metric is a new best (the only test values
a curve or a result holds), and the selected model is measured on every split at the end.

Under several processes each one trains on its share of every batch order (``shard``); the
standard loss goes through accelerate's DDP, ``L2TDLN`` averages its gradients itself.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from metaloss.core import AMAL, L2TDLN, DynamicLossNetwork, Lookahead, TeachingSchedule, TeachStep
from metaloss.core.harness import Run, Selected, Unit, seed_everything, sgd_epoch, train_epochs
from metaloss.detection_seg_catalog import DLN_TEACHERS

from .data import coco128_root, split_train_val
from .plots import plot_part_weights


@dataclass
class DenseTask:
    """What a dense recipe plugs into ``fit_dense``.

    ``standard_loss(outputs, targets) -> (B,)``; ``objective(outputs, targets, dln) -> (B,)`` the
    same loss with the DLN inside (``L2TDLN``'s objective); ``teacher_loss(outputs, targets) ->
    scalar`` the teacher's validation loss; ``evaluate(model, loader) -> {metric: value}`` in eval
    mode; ``select`` the metric that selects the epoch; ``dln_kwargs`` the DLN's class axis and
    ignore index; ``collate`` the batch collation. ``parts(outputs, targets) -> (B, P)``, where a
    task has them, splits the standard loss into P terms whose sum it is (``part_names``), which
    ``amal`` weights per image.
    """

    new_model: Callable[[], nn.Module]
    standard_loss: Callable
    objective: Callable
    teacher_loss: Callable
    evaluate: Callable[[nn.Module, DataLoader], dict]
    select: str
    collate: Callable
    dln_kwargs: dict
    parts: Callable | None = None
    part_names: tuple[str, ...] = ()


@dataclass
class DenseSplits:
    """The datasets of one seed: ``train`` (augmented), ``meta`` (the teacher's), ``val`` (selection),
    ``test``, and ``train_eval`` (the training images without augmentation, for the training metric)."""

    train: Dataset
    meta: Dataset
    val: Dataset
    test: Dataset
    train_eval: Dataset


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """``model`` in eval mode inside the block (gradients off), its mode restored after; yields its device."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def split_opener(data: dict, normalise: tuple, *, transforms: Callable, coco128: Callable, voc: Callable
                 ) -> Callable[[str, bool], Dataset]:
    """``open(split, train) -> Dataset`` for the config's dataset: COCO128's train2017 / val2017
    (``coco128(root, split, transform=...)``) or VOC's train / val (``voc(root, image_set=...,
    transform=...)``), with ``transforms(size, train, mean, std)``; ``normalise`` = (mean, std)."""
    mean, std = normalise

    def open_split(split: str, train: bool) -> Dataset:
        transform = transforms(data["image_size"], train, mean, std)
        if data["name"] == "voc":
            return voc(data["root"], image_set="train" if split == "train" else "val", transform=transform)
        return coco128(coco128_root(data["root"]), "train2017" if split == "train" else "val2017",
                       transform=transform)

    return open_split


def dense_splits(open_split: Callable[[str, bool], Dataset], data: dict, seed: int) -> DenseSplits:
    """One seed's splits from ``open_split(split, train) -> Dataset`` (``split`` "train" or "test";
    ``train``: with augmentation). ``val_size`` and then ``meta_size`` training images are held out
    (seeded), the first ``train_limit`` / ``test_limit`` images used when they are set."""
    augmented, plain = open_split("train", True), open_split("train", False)
    size = min(len(plain), data["train_limit"] or len(plain))
    if data["val_size"] + data["meta_size"] >= size:
        raise ValueError(f"data.val_size + data.meta_size ({data['val_size']} + {data['meta_size']}) must "
                         f"leave training images out of the {size} there are")
    rest, val = split_train_val(size, data["val_size"], seed)
    kept, meta = split_train_val(len(rest), data["meta_size"], seed + 1)
    train, meta = [rest[i] for i in kept], [rest[i] for i in meta]
    test = open_split("test", False)
    if data["test_limit"]:
        test = Subset(test, range(min(len(test), data["test_limit"])))
    return DenseSplits(train=Subset(augmented, train), meta=Subset(plain, meta), val=Subset(plain, val),
                       test=test, train_eval=Subset(plain, train))


def make_optimizer(model: nn.Module, optim: dict, epochs: int):
    """SGD over the trainable parameters (a frozen backbone's are not) with a linear warm-up over
    ``warmup_epochs`` and a cosine decay to 0 over the rest."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=optim["lr"], momentum=optim["momentum"],
                                weight_decay=optim["weight_decay"])
    warmup = optim["warmup_epochs"]

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(epochs - warmup, 1)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def shard(size: int, *, seed: int, epoch: int, rank: int, world_size: int) -> list[int]:
    """This process's share of the (seed, epoch) shuffle of ``range(size)``, the same length on
    every process (the shuffle's tail that does not divide evenly is dropped)."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    per_process = size // world_size
    return order[rank * per_process:(rank + 1) * per_process]


def loader(dataset: Dataset, batch_size: int, collate: Callable, *, workers: int,
           indices: list[int] | None = None, drop_last: bool = False) -> DataLoader:
    subset = dataset if indices is None else Subset(dataset, indices)
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                      drop_last=drop_last)


def to_device(batch, device):
    """Images and targets (a tensor, or a list of per-image dicts of tensors) on ``device``."""
    images, targets = batch
    if isinstance(targets, torch.Tensor):
        return images.to(device), targets.to(device)
    return images.to(device), [{k: v.to(device) for k, v in t.items()} for t in targets]


class MetaBatches:
    """The teacher's validation batches: ``val_batch`` meta images drawn afresh for each teaching
    round, by a generator seeded with (seed, epoch), so a run resumed at an epoch draws the same."""

    def __init__(self, dataset: Dataset, val_batch: int, collate: Callable, device, *, seed: int, epoch: int):
        self.dataset, self.collate, self.device = dataset, collate, device
        self.size = min(val_batch, len(dataset))
        self.generator = torch.Generator().manual_seed(seed * 100_003 + epoch + 7)

    def next(self):
        picked = torch.randperm(len(self.dataset), generator=self.generator)[:self.size].tolist()
        return to_device(self.collate([self.dataset[i] for i in picked]), self.device)


def fit_dense(run: Run, unit: Unit, task: DenseTask, splits: DenseSplits, cfg: dict,
              accelerator: Accelerator) -> Selected:
    """Train ``unit.method`` for ``unit.seed``; return the epoch selected on ``val`` with its metrics
    on every split (``val_``, ``test_``, ``train_`` prefixes) and the last epoch's test metric."""
    device = accelerator.device
    seed_everything(unit.seed)  # the initial weights and the augmentation come from the seed
    model = task.new_model().to(device)
    epochs, optim, workers = cfg["model"]["epochs"], cfg["optim"], cfg["data"]["workers"]
    optimizer, scheduler = make_optimizer(model, optim, epochs)
    stateful = {"optimizer": optimizer, "scheduler": scheduler}
    teacher, schedule, mixing = DLN_TEACHERS.get(unit.method), None, None
    if teacher is None:
        trained, step_optimizer = accelerator.prepare(model, optimizer)
        if unit.method == "amal":
            mixing = stateful["amal"] = part_mixing(task, len(splits.train), cfg["amal"]).to(device)
    else:
        settings = cfg["l2t_dln"]
        l2t = L2TDLN(DynamicLossNetwork(init=settings["init"], seed=unit.seed).to(device), teacher=teacher,
                     dln_lr=settings["dln_lr"], teacher_lr=settings["teacher_lr"], val_loss=task.teacher_loss,
                     objective=task.objective, **task.dln_kwargs)
        schedule = TeachingSchedule(l2t, settings["unroll_steps"], settings["teach_every"])
        stateful["l2t"] = l2t
    evaluation = {name: loader(getattr(splits, name), optim["batch_size"], task.collate, workers=workers)
                  for name in ("val", "test", "train_eval")}

    def measured(name: str) -> dict:
        values = task.evaluate(model, evaluation[name])
        return {f"{name.removesuffix('_eval')}_{k}": v for k, v in values.items()}

    def batches(epoch: int) -> tuple[Iterator, int, list[int]]:
        """This process's (positions in ``splits.train``, images, targets) batches, their count, its shard."""
        mine, size = shard(len(splits.train), seed=unit.seed, epoch=epoch, rank=accelerator.process_index,
                           world_size=accelerator.num_processes), optim["batch_size"]
        batch_loader = loader(splits.train, size, task.collate, workers=workers, indices=mine,
                              drop_last=True)  # PSPNet's pooled BatchNorm needs two images
        positions = (torch.tensor(mine[i * size:(i + 1) * size], device=device)
                     for i in range(len(batch_loader)))
        return zip(positions, (to_device(b, device) for b in batch_loader)), len(batch_loader), mine

    def batch_loss(positions: torch.Tensor, batch) -> torch.Tensor:
        images, targets = batch
        outputs = trained(images)
        if mixing is None:
            return task.standard_loss(outputs, targets).mean()
        return mixing.loss(positions, task.parts(outputs, targets))

    def taught_epoch(stream: Iterator, count: int, epoch: int) -> dict:
        """An epoch of ``schedule``'s windows: the student's mean loss and the teaching rounds' means."""
        schedule.new_epoch()
        meta = MetaBatches(splits.meta, cfg["l2t_dln"]["val_batch"], task.collate, device,
                           seed=unit.seed, epoch=epoch)
        losses, taught = [], {}
        for i, (_, batch) in enumerate(stream):
            stats = schedule.step(model, optimizer, batch, meta.next, last=i == count - 1)
            if isinstance(stats, TeachStep):
                for key in ("dln_grad_norm", "dln_change", "val_loss"):
                    taught.setdefault(key, []).append(getattr(stats, key))
                stats = stats.student
            if stats is not None:
                losses.append(stats.loss)
        return {"train_loss": sum(losses) / max(len(losses), 1)} | {
            ("teach_" if k == "val_loss" else "") + k: sum(v) / len(v) for k, v in taught.items()}

    def epoch_fn(epoch: int) -> dict:
        model.train()
        metrics = {"lr": optimizer.param_groups[0]["lr"]}
        stream, count, mine = batches(epoch)
        if schedule is None:
            metrics["train_loss"] = sgd_epoch(stream, batch_loss, [step_optimizer],
                                              backward=accelerator.backward)
        else:
            metrics |= taught_epoch(stream, count, epoch)
        if mixing is not None and mixing.due(epoch + 1):
            metrics |= mix_parts(mixing, model, task, Subset(splits.train_eval, mine), splits.meta, optimizer,
                                 batch_size=optim["batch_size"], val_batch=cfg["amal"]["val_batch"])
        scheduler.step()
        return metrics | measured("val")

    selected = train_epochs(unit, model=model, stateful=stateful, epochs=epochs, epoch_fn=epoch_fn,
                            val_key=f"val_{task.select}", test_key=f"test_{task.select}", log=run.log,
                            test_fn=lambda: measured("test")[f"test_{task.select}"],
                            progress=lambda it: run.progress(it, desc=f"{unit.method} seed {unit.seed}"))
    last_test = measured("test")[f"test_{task.select}"]
    model.load_state_dict(selected.state)
    selected.metrics |= measured("val") | measured("test") | measured("train_eval")
    selected.metrics[f"last_test_{task.select}"] = last_test
    return selected


def part_mixing(task: DenseTask, num_images: int, settings: dict) -> AMAL:
    """AMAL's table of per-image weights of ``task``'s loss parts, every weight starting at 1 (the
    standard loss) and kept in [0, ``settings["upper"]``] (no upper bound if it is None)."""
    if task.parts is None:
        raise ValueError("amal weights a loss's parts per image; this task's loss has none")
    count = len(task.part_names)
    return AMAL(num_images, count - 1, lr=settings["lr"], every=settings["every"], unit="epoch",
                inner_steps=settings["inner_steps"], init=[1.0] * count, mode=settings["mode"],
                lower=0.0, upper=settings["upper"])


def mix_parts(mixing: AMAL, model: nn.Module, task: DenseTask, train: Subset, meta: Dataset,
              optimizer: torch.optim.SGD, *, batch_size: int, val_batch: int) -> dict[str, float]:
    """One AMAL meta phase (Algorithm 1) over ``train`` (this process's shard of the training images,
    unaugmented, as a ``Subset`` of them): each batch's weights move along the hypergradient of the
    standard loss on ``meta`` (batches of ``val_batch``, cycled) after the optimiser's look-ahead
    step. Returns the mean weight of each part over all training images."""
    device = next(model.parameters()).device

    def collated(dataset: Dataset, picked: list[int]):
        return to_device(task.collate([dataset[i] for i in picked]), device)

    def train_batches():
        for start in range(0, len(train), batch_size):
            picked = list(range(start, min(start + batch_size, len(train))))
            images, targets = collated(train, picked)
            positions = torch.tensor([train.indices[i] for i in picked], device=device)
            yield positions, images, lambda outputs, targets=targets: task.parts(outputs, targets)

    val_batches = [collated(meta, list(range(start, min(start + val_batch, len(meta)))))
                   for start in range(0, len(meta), val_batch)]
    mixing.meta_phase(model, train_batches, val_batches, lookahead=Lookahead.from_optimizer(optimizer),
                      outer_loss=task.teacher_loss)
    table = mixing.weights.table
    return {f"weight_{name}": float(table[:, k].mean()) for k, name in enumerate(task.part_names)}


def run_methods(run: Run, task: DenseTask, open_split: Callable[[str, bool], Dataset],
                draw: Callable[[nn.Module, torch.Tensor, object, str], None]) -> None:
    """Every (seed, method) unit of the run, trained once (``fit_dense``) and afterwards loaded; for
    the first seed, ``draw(model, images, targets, method)`` pictures the selected model on the first
    ``plot_images`` selection images, and ``plots/part_weights_amal.png`` shows ``amal``'s per-image
    weights after its last meta phase (rank 0); a finished unit without its checkpoint is not drawn
    again."""
    cfg = run.config
    accelerator = Accelerator()
    for seed in cfg["seeds"]:
        splits = dense_splits(open_split, cfg["data"], seed)
        for method in cfg["methods"]:
            unit = run.unit(method, seed)
            first = seed == cfg["seeds"][0]
            # a finished unit whose checkpoint was dropped (its pictures drawn when it finished) only reports
            kept = unit.restorable(model=True, names=["amal"] if method == "amal" else [])
            if first and not kept:
                print(f"{unit!r}: its checkpoint is gone; its result stays, its pictures are not redrawn")
            model = task.new_model() if kept else None
            unit.train_or_load(model, partial(fit_dense, run, unit, task, splits, cfg, accelerator))
            if first and kept and cfg["plot_images"] and run.is_main:
                shown = [splits.val[i] for i in range(min(cfg["plot_images"], len(splits.val)))]
                model.eval()
                with torch.no_grad():
                    draw(model, *task.collate(shown), method)
            if first and kept and method == "amal" and run.is_main:
                plot_part_weights(unit.read_checkpoint()["amal"]["table"], task.part_names,
                                  run.dir / "plots" / "part_weights_amal.png")
