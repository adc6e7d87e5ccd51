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

from pathlib import Path

import yaml
from accelerate import Accelerator

from metaloss.core.harness import Recipe, Run

from ..distillation import METHODS, Guides, make_setting, scaled_epochs, train_student
from ..plots import plot_lambda_histograms
from ..teachers import check_shared_teacher, teacher_seed


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


RECIPE = Recipe(
    name="kd",
    description="image KD: CE, KD, AMAL, multi-teacher AMAL, TAKD, DGKD, self-distillation (CIFAR)",
    default_config=Path(__file__).with_name("kd.yaml"),
    main=main,
)
