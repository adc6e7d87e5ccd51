"""The `kd` recipe end to end on the committed CIFAR-10 fixture: every method, guides, resume."""

import json
import re

import pytest
import torch

from metaloss.core.harness import Run
from metaloss.vision.data import fixture_root
from metaloss.vision.distillation import METHODS, milestones_for, scaled_epochs
from metaloss.vision.recipes.kd import main

from .fixture_config import fixture_config

TINY = [
    "seeds=[0]", "data.train_limit=160", "data.val_size=40", "data.test_limit=80", "data.workers=0",
    "teacher.arch=cifar_resnet14", "student.arch=cifar_resnet8", "assistants=[cifar_resnet8]",
    "teacher.epochs=2", "student.epochs=2", "teacher.snapshot_epochs=[1]", "optim.milestones=[1]",
    "optim.batch_size=32", "amal.every=1", "data.label_noise=0.4",
]


def _config(tmp_path, *overrides):
    return fixture_config("kd", tmp_path, *TINY, *overrides)


@pytest.mark.slow
def test_every_method_trains_and_a_second_start_resumes_nothing(tmp_path):
    config = _config(tmp_path, f"methods=[{','.join(METHODS)}]")
    run = Run(tmp_path / "run", config, "kd")
    main(run)
    run.finalize()
    results = {r["method"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    # guides are units of their own: teacher, the TAKD and DGKD assistants, the self-teacher
    assert {"teacher", "ta-cifar_resnet8", "dgta-cifar_resnet8", "self", *METHODS} <= results.keys()
    for method in METHODS:
        assert 0.0 <= results[method]["test_acc"] <= 1.0
        assert results[method]["best_epoch"] in (0, 1)
    # AMAL learns one column per guide: K = 1, 2 (snapshot + final), 2 (teacher + assistant)
    for method, k in (("amal", 1), ("amal_early", 2), ("amal_multi", 2), ("dgkd_amal", 2), ("self_amal", 1)):
        state = torch.load(tmp_path / "run" / "checkpoints" / f"{method}-seed0.pt", weights_only=False)
        assert state["amal"]["table"].shape == (120, 1 + k), method  # 160 - 40 validation images
        assert "trust_label_noisy" in results[method]
    assert (tmp_path / "run" / "snapshots" / "teacher-seed0-epoch1.pt").exists()
    assert (tmp_path / "run" / "plots" / "amal_lambda_trust.png").exists()
    assert (tmp_path / "run" / "plots" / "amal_lambda_total.png").exists()

    # Everything is done: a second start trains nothing and leaves the results as they are.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    main(Run(tmp_path / "run", config, "kd"))
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    assert before == after


def test_assistants_learn_from_the_chain_takd_or_densely_dgkd(tmp_path, monkeypatch):
    """TAKD: each assistant distils from the model before it; DGKD: from the teacher and
    every assistant before it, with guide dropout (Son et al. 2021, section 3.2)."""
    import metaloss.vision.distillation as distillation
    import metaloss.vision.recipes.kd as kd
    from metaloss.core.harness import Selected

    trained = {}

    def fake_fit(run, accelerator, setting, unit, model, guides, mixing, *args, **kwargs):
        model.trained_as = unit.method
        trained[unit.method] = ([g.trained_as for g in guides], mixing)
        return Selected({"best_epoch": 0, "val_acc": 0.0, "test_acc": 0.0}, model.state_dict())

    monkeypatch.setattr(distillation, "fit_student", fake_fit)
    config = _config(tmp_path, "methods=[takd,dgkd,amal_multi]",
                     "assistants=[cifar_resnet14,cifar_resnet8]", "data.label_noise=0.0")
    kd.main(Run(tmp_path / "run", config, "kd"))
    assert trained["teacher"] == ([], "none")
    assert trained["ta-cifar_resnet14"] == (["teacher"], "fixed")
    assert trained["ta-cifar_resnet8"] == (["ta-cifar_resnet14"], "fixed")
    assert trained["dgta-cifar_resnet14"] == (["teacher"], "dropout")
    assert trained["dgta-cifar_resnet8"] == (["teacher", "dgta-cifar_resnet14"], "dropout")
    assert trained["takd"] == (["ta-cifar_resnet8"], "fixed")
    assert trained["dgkd"] == (["teacher", "dgta-cifar_resnet14", "dgta-cifar_resnet8"], "dropout")
    assert trained["amal_multi"] == (["teacher", "ta-cifar_resnet14", "ta-cifar_resnet8"], "amal")


def test_schedule_scale_scales_every_epoch_count(tmp_path):
    config = _config(tmp_path, "schedule_scale=0.125", "teacher.epochs=240", "student.epochs=240",
                     "optim.milestones=[150,180,210]", "amal.every=10", "teacher.snapshot_epochs=[40,80]")
    assert scaled_epochs(config) == {"teacher": 30, "student": 30, "snapshots": [5, 10], "amal_every": 1}
    # milestones are the student's (150/180/210 of 240); a 60-epoch teacher gets them stretched
    assert milestones_for(config, 30) == [19, 22, 26]
    assert milestones_for(config, 60) == [38, 45, 52]
    with pytest.raises(ValueError, match=r"schedule_scale must be a number in \(0, 1\]"):
        scaled_epochs({**config, "schedule_scale": 1.5})


@pytest.mark.parametrize("overrides, message", [
    (["methods=[ce,mystery]"], "methods\\[1\\]: expected 'ce', 'kd'.* got 'mystery'"),
    (["methods=[takd]", "assistants=[]"], "need at least one assistant"),
    (["methods=[amal_early]", "teacher.snapshot_epochs=[]"], "amal_early needs the early-stopped"),
    (["teacher.seed=0"], "needs data.split_seed"),
    (["teacher.labels=gold"], "teacher.labels: expected 'noisy' or 'clean'"),
    (["schedule_scale=1.5"], "schedule_scale: expected a number less than or equal to 1"),
    (["teacher.from_run=/no/such/run"], "teacher.from_run: '/no/such/run' is not a run folder"),
])
def test_bad_method_settings_fail_before_training(refused, overrides, message):
    assert re.search(message, refused("kd", *overrides))


def test_cached_guide_logits_are_the_guides_on_unaugmented_images():
    from metaloss.vision.data import eval_transform, load_image_splits
    from metaloss.vision.distillation import guide_logits_table

    splits = load_image_splits("cifar10", fixture_root(), train_limit=100, val_size=20, test_limit=10)
    guides = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval() for _ in "ab"]
    tables = guide_logits_table(guides, splits, "cpu", workers=0)
    clean = splits.train.with_transform(eval_transform(splits.mean, splits.std))
    x = torch.stack([clean[i][0] for i in range(len(clean))])
    for guide, table in zip(guides, tables):
        torch.testing.assert_close(table, guide(x).detach())


def test_a_train_teacher_run_serves_kd_with_its_teacher_and_snapshots(tmp_path, capsys):
    from metaloss.core.harness.launch import main as launch

    base = [*TINY, f"data.root={fixture_root()}", f"output_dir={tmp_path}"]
    assert launch(["train_teacher", *base, "--run-dir", str(tmp_path / "teacher")]) == 0
    assert (tmp_path / "teacher" / "snapshots" / "teacher-seed0-epoch1.pt").exists()
    source = json.loads((tmp_path / "teacher" / "results" / "teacher-seed0.json").read_text())

    reuse = [*base, f"teacher.from_run={tmp_path / 'teacher'}", "methods=[kd,amal_early]"]
    assert launch(["kd", *reuse, "--run-dir", str(tmp_path / "kd")]) == 0
    results = {r["method"]: r for r in json.loads((tmp_path / "kd" / "results.json").read_text())}
    assert set(results) == {"kd", "amal_early"}  # the teacher was not trained again
    assert source["test_acc"] >= 0.0

    # a teacher that learnt from other data is refused before any work
    other = [*reuse, "data.label_noise=0.2"]
    assert launch(["kd", *other, "--run-dir", str(tmp_path / "kd2")]) == 2
    assert not (tmp_path / "kd2").exists()
    assert "has data =" in capsys.readouterr().err

    # ...unless it learnt from the clean labels: then the students' label noise is theirs alone
    shared = [*base, "teacher.labels=clean", "teacher.seed=0", "data.split_seed=0", "seeds=[0,1]"]
    assert launch(["train_teacher", *shared, "--run-dir", str(tmp_path / "clean_teacher")]) == 0
    assert not (tmp_path / "clean_teacher" / "results" / "teacher-seed1.json").exists()  # one teacher
    source = f"teacher.from_run={tmp_path / 'clean_teacher'}"
    noisy = [*shared, "data.label_noise=0.2", "methods=[kd]", source]
    assert launch(["kd", *noisy, "--run-dir", str(tmp_path / "kd3")]) == 0
    assert len(json.loads((tmp_path / "kd3" / "results.json").read_text())) == 2  # kd, seeds 0 and 1


def test_one_channel_images_build_one_channel_models(tmp_path):
    """Fashion-MNIST (1 x 28 x 28) through the same recipe: models take the data's channels."""
    config = _config(tmp_path, "data.name=fashion_mnist", "methods=[kd]", "data.label_noise=0.0",
                     "teacher.snapshot_epochs=[]", "teacher.epochs=1", "student.epochs=1")
    run = Run(tmp_path / "run", config, "kd")
    main(run)
    results = [json.loads(p.read_text()) for p in (tmp_path / "run" / "results").iterdir()]
    assert {r["method"] for r in results} == {"teacher", "kd"}


def test_a_teacher_is_the_same_whatever_ran_before_it(tmp_path):
    """Its initial weights come from its seed, not from the process's random state."""
    from metaloss.core.harness.launch import main as launch

    base = [*TINY, f"data.root={fixture_root()}", f"output_dir={tmp_path}"]
    states = []
    for name, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)
        assert launch(["train_teacher", *base, "--run-dir", str(tmp_path / name)]) == 0
        states.append(torch.load(tmp_path / name / "checkpoints" / "teacher-seed0.pt",
                                 weights_only=False)["best_model"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("kind", ["symmetric", "instance", "asymmetric"])
def test_students_labels_carry_the_configured_noise(tmp_path, kind):
    from metaloss.vision.distillation import make_setting

    setting = make_setting(_config(tmp_path, f"data.noise={kind}", "data.label_noise=0.4"), seed=3)
    clean = setting.splits.train.labels
    assert torch.equal(setting.noisy, setting.labels != clean)
    low = 0.1 if kind == "asymmetric" else 0.25  # asymmetric flips only CIFAR-10's five mapped classes
    assert low < setting.noisy.float().mean() < 0.55
