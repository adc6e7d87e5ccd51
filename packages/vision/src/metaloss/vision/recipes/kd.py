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

from accelerate import Accelerator

from metaloss.core.harness import Run

from ..distillation import Guides, make_setting, scaled_epochs, train_student
from ..plots import plot_lambda_histograms


def main(run: Run) -> None:
    cfg = run.config
    epochs = scaled_epochs(cfg)
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

