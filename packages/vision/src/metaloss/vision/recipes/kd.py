"""Knowledge distillation on images, with AMAL (AMAL paper §4.1, §5.1-5.2, appendix C-D).

Every method trains the same student architecture on the same data and seeds;
they differ in the *guides* the student distils from and in how the primary
loss (CE on the training label) and the K guide losses (tau^2 KL, Hinton et al.)
are mixed per example:

- ``ce``: no guide, CE only.
- ``kd``: the teacher; (1 - lambda_a) CE + lambda_a KD (Hinton et al. 2015).
- ``amal``: the teacher; AMAL's per-example mix (eq. 2, Algorithm 1).
- ``amal_early``: teacher snapshots after ``teacher.snapshot_epochs`` plus the final
  teacher, mixed by AMAL over K teachers (appendix D.1).
- ``amal_multi``: the teacher and every assistant (different architectures), AMAL.
- ``takd``: the last assistant of the chain teacher -> TA1 -> TA2 ..., KD (Mirzadeh et al. 2020).
- ``dgkd``: the teacher and every densely trained assistant, KD with stochastic guide
  dropout (Son et al. 2021).
- ``dgkd_amal``: the DGKD guides, mixed by AMAL.
- ``self_kd`` / ``self_amal``: a CE-trained model of the student's own architecture,
  KD / AMAL (self-distillation).

Guides are units of the run themselves ("teacher", "ta-<arch>", "self"), trained
once per seed and reused by every method. The teacher learns from the same
(possibly noisy) training labels as the student. TAKD's assistants ("ta-<arch>",
also ``amal_multi``'s) learn by KD from the previous model of the chain; DGKD's
("dgta-<arch>") are trained densely, each from the teacher and every larger
assistant with the same stochastic guide dropout as the student (Son et al. §3.2-3.3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import timm
import torch
import yaml
from accelerate import Accelerator

import metaloss.vision.models  # noqa: F401  (registers the CIFAR models in timm)
from metaloss.core import (
    AMAL,
    cross_entropy,
    dropout_mix_weights,
    fixed_mix_weights,
    kd_loss,
    mix_losses,
)
from metaloss.core.harness import Recipe, Run, atomic_write, seed_everything

from ..data import ImageSplits, eval_transform, load_image_splits, make_loader
from ..noise import NOISE_GENERATORS
from ..plots import plot_lambda_histograms
from ..training import accuracy, fit
from .teachers import check_shared_teacher, teacher_seed

# method -> (which guides, how they are mixed)
METHODS = {
    "ce": ("none", "none"),
    "kd": ("teacher", "fixed"),
    "amal": ("teacher", "amal"),
    "amal_early": ("snapshots", "amal"),
    "amal_multi": ("all", "amal"),
    "takd": ("chain", "fixed"),
    "dgkd": ("dense", "dropout"),
    "dgkd_amal": ("dense", "amal"),
    "self_kd": ("self", "fixed"),
    "self_amal": ("self", "amal"),
}


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
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"schedule_scale must be in (0, 1], got {scale}")

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


def check_settings(cfg: dict) -> None:
    """Combinations that would silently give a wrong experiment: fail before any work."""
    check_shared_teacher(cfg)
    if cfg["teacher"]["labels"] not in ("noisy", "clean"):
        raise ValueError(f"teacher.labels must be 'noisy' or 'clean', got {cfg['teacher']['labels']!r}")


def main(run: Run) -> None:
    cfg = run.config
    check_settings(cfg)
    unknown = sorted(set(cfg["methods"]) - set(METHODS))
    if unknown:
        raise ValueError(f"methods must be drawn from {sorted(METHODS)}, got unknown {unknown}")
    if any(METHODS[m][0] in ("all", "chain", "dense") for m in cfg["methods"]) and not cfg["assistants"]:
        raise ValueError("takd, dgkd, dgkd_amal and amal_multi need at least one entry in assistants")
    if any(METHODS[m][0] == "snapshots" for m in cfg["methods"]) and not cfg["teacher"]["snapshot_epochs"]:
        raise ValueError("amal_early needs teacher.snapshot_epochs (the early-stopped teachers)")
    epochs = scaled_epochs(cfg)
    check_teacher_source(cfg)
    accelerator = Accelerator()
    tables = []
    for seed in cfg["seeds"]:
        setting = make_setting(cfg, seed)
        guides = Guides(run, accelerator, setting, epochs)
        for method in cfg["methods"]:
            table = train_student(run, accelerator, setting, guides, method, epochs)
            if table is not None:
                tables.append((table, {"label_noisy": setting.noisy}))
    if run.is_main and tables and cfg["data"]["label_noise"] > 0:
        plot_lambda_histograms(tables, run.dir / "plots",
                               names={"label_noisy": ("training label corrupted", "label clean")})


def train_teacher_main(run: Run) -> None:
    """The ``train_teacher`` recipe: only the teacher of each seed, with its snapshots."""
    if run.config["teacher"]["from_run"]:
        raise ValueError("train_teacher trains a teacher; leave teacher.from_run empty")
    check_settings(run.config)
    accelerator = Accelerator()
    for seed in run.config["seeds"]:
        Guides(run, accelerator, make_setting(run.config, seed), scaled_epochs(run.config)).get("teacher")


def check_teacher_source(cfg: dict) -> None:
    """A teacher reused from another run must have learnt from the same data, schedule and seeds."""
    source = cfg["teacher"]["from_run"]
    if not source:
        return
    saved_path = Path(source) / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"teacher.from_run={source!r} is not a run folder (no config.yaml)")
    saved = yaml.safe_load(saved_path.read_text())
    mine = {**cfg["teacher"], "from_run": ""}
    data_now, data_then = dict(cfg["data"]), dict(saved["data"])
    if cfg["teacher"]["labels"] == "clean":  # the teacher never saw the student's label noise
        for key in ("label_noise", "noise"):
            data_now.pop(key), data_then.pop(key)
    for key, a, b in (("data", data_then, data_now), ("teacher", saved["teacher"], mine),
                      ("optim", saved["optim"], cfg["optim"]), ("schedule_scale", saved["schedule_scale"],
                                                                cfg["schedule_scale"])):
        if a != b:
            raise ValueError(f"teacher.from_run: the run in {source} has {key} = {a!r}, this run {b!r}")
    seeds = sorted({teacher_seed(cfg, s) for s in cfg["seeds"]})
    missing = [s for s in seeds if not (Path(source) / "results" / f"teacher-seed{s}.json").exists()]
    if missing:
        raise ValueError(f"teacher.from_run: the run in {source} has no finished teacher for seeds {missing}")


def make_setting(cfg: dict, seed: int) -> Setting:
    d = cfg["data"]
    split_seed = seed if d["split_seed"] is None else d["split_seed"]
    splits = load_image_splits(
        d["name"], d["root"], val_size=d["val_size"] or None, train_limit=d["train_limit"] or None,
        test_limit=d["test_limit"] or None, seed=split_seed,
    )
    clean = splits.train.labels
    if d["label_noise"] > 0:
        corrupt = NOISE_GENERATORS[d["noise"]]
        noisy_labels, noisy = corrupt(clean, d["label_noise"], splits.num_classes, seed=seed)
    else:
        noisy_labels, noisy = clean.clone(), torch.zeros_like(clean, dtype=torch.bool)
    return Setting(seed, splits, noisy_labels, noisy)


class Guides:
    """The models students distil from, trained on demand once per seed and cached in the run."""

    def __init__(self, run: Run, accelerator: Accelerator, setting: Setting, epochs: dict):
        self.run, self.accelerator, self.setting, self.epochs = run, accelerator, setting, epochs
        self._models: dict[str, torch.nn.Module] = {}

    def for_method(self, method: str) -> list[torch.nn.Module]:
        kind = METHODS[method][0]
        cfg = self.run.config
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
        assistants = [f"{prefix}{arch}" for arch in cfg["assistants"]]
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
            state = torch.load(self._source_dir() / "checkpoints" / f"teacher-seed{seed}.pt",
                               map_location="cpu", weights_only=False)
            model.load_state_dict(state["best_model"])
            return model.to(self.accelerator.device).eval()
        unit = self.run.unit(name, seed)
        if unit.done:
            model.load_state_dict(unit.load_checkpoint()["best_model"])
        else:
            snapshots = self.epochs["snapshots"] if name == "teacher" else []
            mixing = "dropout" if name.startswith("dgta-") else "fixed" if guides else "none"
            result = fit_student(self.run, self.accelerator, setting, unit, model, guides,
                                  mixing, self.epochs["teacher"],
                                  on_epoch_end=self._snapshot_saver(snapshots))
            model.load_state_dict(result.pop("best_model"))
            unit.finish(result)
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


def train_student(run, accelerator, setting: Setting, guides: Guides, method: str, epochs: dict):
    """Train one student; return its AMAL lambda table (or None for other methods)."""
    guide_models = guides.for_method(method)
    unit = run.unit(method, setting.seed)
    seed_everything(setting.seed)
    student = create_model(run.config["student"]["arch"], setting.splits)
    mixing = METHODS[method][1]
    amal = None
    if mixing == "amal":
        amal = make_amal(run.config, len(setting.labels), len(guide_models), epochs)
    if unit.done:
        if amal is None:
            return None
        amal.load_state_dict(unit.load_checkpoint()["amal"])
        return amal.weights.table.cpu()
    result = fit_student(run, accelerator, setting, unit, student, guide_models, mixing,
                          epochs["student"], amal=amal)
    result.pop("best_model")
    if amal is not None:
        table = amal.weights.table.cpu()
        trust = table[:, 1:].sum(1) - table[:, 0]  # lambda_a (all guides) - lambda_p
        if setting.noisy.any():
            result["trust_label_noisy"] = float(trust[setting.noisy].mean())
            result["trust_label_clean"] = float(trust[~setting.noisy].mean())
    unit.finish(result)
    return None if amal is None else table


def make_amal(cfg: dict, num_examples: int, num_guides: int, epochs: dict) -> AMAL:
    a = cfg["amal"]
    init = a["init"]
    if num_guides > 1:  # the paper's lambda_a split across the K guides
        init = [init[0]] + [init[1] / num_guides] * num_guides
    return AMAL(num_examples, num_guides, lr=a["lr"], every=epochs["amal_every"], unit=a["unit"],
                inner_steps=a["inner_steps"], init=init, mode=a["mode"], normalize=a["normalize"])


def fit_student(run, accelerator, setting: Setting, unit, model, guides, mixing, num_epochs,
                amal=None, on_epoch_end=None, subset: torch.Tensor | None = None) -> dict:
    """Train ``model`` on the training labels and the ``guides``, mixed by ``mixing``.

    ``subset``: train on these training-set indices only (the coreset recipe).
    """
    cfg = run.config
    tau, lambda_a = cfg["kd"]["tau"], cfg["kd"]["lambda_a"]
    optim = {**cfg["optim"], "milestones": milestones_for(cfg, num_epochs)}
    splits, labels = setting.splits, setting.labels
    device = accelerator.device
    workers = cfg["data"]["workers"]

    cached = None
    if cfg["kd"]["cache_guides"] and guides:
        cached = guide_logits_table(guides, splits, device, workers)

    def losses(z, idx, x):  # (B, 1 + K): CE on the training label, then one KD column per guide
        if cached is None:
            with torch.no_grad():
                guide_logits = [g(x) for g in guides]
        else:
            guide_logits = [table[idx.cpu()].to(device) for table in cached]
        columns = [cross_entropy(z, labels[idx.cpu()].to(device))]
        return torch.stack(columns + [kd_loss(z, t, tau) for t in guide_logits], dim=1)

    def loss_fn(z, idx, x):
        per_example = losses(z, idx, x)
        if mixing == "none":
            return per_example[:, 0].mean()
        if mixing == "amal":
            return amal.loss(idx.to(device), per_example)
        k = per_example.shape[1] - 1
        if mixing == "fixed":
            weights = fixed_mix_weights(len(idx), k, lambda_a)
        else:
            weights = dropout_mix_weights(len(idx), k, lambda_a, cfg["dgkd"]["drop_prob"])
        return mix_losses(per_example, weights.to(per_example))

    def train_batches(epoch):
        loader = make_loader(splits.train, cfg["optim"]["batch_size"], train=True, workers=workers,
                             seed=unit.seed, epoch=epoch, rank=accelerator.process_index,
                             world_size=accelerator.num_processes, return_index=True, indices=subset)
        return ((idx, x) for idx, x, _ in loader)

    def eval_batches(dataset):
        return make_loader(dataset, 512, train=False, workers=workers, seed=unit.seed, epoch=0)

    val_batches = list(eval_batches(splits.val))

    return fit(run, unit, model, accelerator=accelerator, train_batches=train_batches, loss_fn=loss_fn,
               evaluate=lambda m: {"val_acc": accuracy(m, val_batches, device)},
               test=lambda m: accuracy(m, eval_batches(splits.test), device),
               optim=optim, epochs=num_epochs, amal=amal, amal_losses=losses,
               amal_val_batches=val_batches, on_epoch_end=on_epoch_end)


@torch.no_grad()
def guide_logits_table(guides, splits: ImageSplits, device, workers: int) -> list[torch.Tensor]:
    """Each guide's logits on every training image without augmentation, by dataset index.

    ``kd.cache_guides`` trades the faithful KD target (the guide on the same
    augmented batch as the student) for one pass over the data: on a CPU the
    guide's forward costs more than the student's training step.
    """
    clean = splits.train.with_transform(eval_transform(splits.mean, splits.std))
    tables = [None] * len(guides)
    loader = make_loader(clean, 512, train=False, workers=workers, seed=0, epoch=0, return_index=True)
    for idx, x, _ in loader:
        for k, guide in enumerate(guides):
            out = guide(x.to(device)).cpu()
            if tables[k] is None:
                tables[k] = torch.full((len(clean), out.shape[1]), float("nan"))
            tables[k][idx] = out
    if any(bool(t.isnan().any()) for t in tables):
        raise RuntimeError("the evaluation loader did not visit every training image")
    return tables


def create_model(arch: str, splits: ImageSplits) -> torch.nn.Module:
    """A timm model for the classes and image channels of ``splits``."""
    try:
        return timm.create_model(arch, num_classes=splits.num_classes, in_chans=splits.train.images.shape[1])
    except RuntimeError as err:  # timm's "Unknown model"
        raise ValueError(f"unknown architecture {arch!r} ({err}); try e.g. cifar_resnet8") from err


TRAIN_TEACHER = Recipe(
    name="train_teacher",
    description="train the kd recipe's teacher alone, saving snapshots at teacher.snapshot_epochs",
    default_config=Path(__file__).with_name("kd.yaml"),
    main=train_teacher_main,
)

RECIPE = Recipe(
    name="kd",
    description="image KD: CE, KD, AMAL, multi-teacher AMAL, TAKD, DGKD, self-distillation (CIFAR)",
    default_config=Path(__file__).with_name("kd.yaml"),
    main=main,
)
