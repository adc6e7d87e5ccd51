"""The vision recipes' config schemas, through the launcher: a bad value is one line and leaves nothing.

Each case goes through ``launch.main`` (the ``refused`` fixture): exit code 2, a
single ``run.py: config error`` line naming the key, the expected and the given
value, and no run folder. None of these trains anything, so they are fast.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from metaloss.core.harness.config import flat_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.core.harness.launch import main as launch
from metaloss.core.harness.schema import validate_config

REPO = Path(__file__).resolve().parents[2]
VISION = ("kd_digits", "kd", "train_teacher", "coreset", "wdue")


# The bad values issue 12 lists: each used to fail only after minutes of work.
@pytest.mark.parametrize("override, line", [
    ("optim.lr=0", "optim.lr: expected a number greater than 0, got 0.0"),
    ("student.epochs=-3", "student.epochs: expected a number greater than 0, got -3"),
    ("methods=[ce,foo]", "methods[1]: expected 'ce', 'kd' or 'amal', got 'foo'"),
    ("amal.mode=exactt", "amal.mode: expected 'exact', 'last_layer', 'finite_difference' or 'first_order', "
                         "got 'exactt'"),
    ("data.label_noise=1.5", "data.label_noise: expected a number less than 1, got 1.5"),
])
def test_kd_digits_refuses_the_issues_bad_values(refused, override, line):
    assert refused("kd_digits", override) == f"run.py: config error: {line}"


@pytest.mark.parametrize("override, message", [
    ("seeds=[]", r"seeds: expected at least 1 item"),
    ("seeds=[-1]", r"seeds\[0\]: expected a number greater than or equal to 0, got -1"),
    ("kd.lambda_a=1.2", r"kd.lambda_a: expected a number less than or equal to 1, got 1.2"),
    ("kd.tau=0", r"kd.tau: expected a number greater than 0, got 0.0"),
    ("teacher.dropout=1", r"teacher.dropout: expected a number less than 1, got 1.0"),
    ("optim.momentum=-0.1", r"optim.momentum: expected a number greater than or equal to 0, got -0.1"),
    ("amal.init=[1]", r"amal.init: expected at least 2 items"),
    ("trackers=[tensorbored]", r"trackers\[0\]: expected 'tensorboard', .* got 'tensorbored'"),
    ("data.val=0", r"data.val: expected a number greater than 0, got 0"),
])
def test_kd_digits_refuses_values_out_of_range(refused, override, message):
    assert re.search(message, refused("kd_digits", override))


def test_an_override_file_is_checked_like_key_value(refused, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 0\n")
    line = refused("kd_digits", "--config", str(bad))
    assert line == "run.py: config error: optim.lr: expected a number greater than 0, got 0.0"


@pytest.mark.parametrize("overrides, message", [
    (["optim.lr=0"], r"optim.lr: expected a number greater than 0, got 0.0"),
    (["student.epochs=0"], r"student.epochs: expected a number greater than 0, got 0"),
    (["data.label_noise=1"], r"data.label_noise: expected a number less than 1, got 1.0"),
    (["data.name=mnist"], r"data.name: expected 'cifar10', .* got 'mnist'"),
    (["data.noise=uniform"], r"data.noise: expected 'symmetric', 'pair', .* or 'instance'"),
    (["data.name=svhn", "data.noise=asymmetric"], r"asymmetric noise is CIFAR-10's class map; with svhn"),
    (["optim.schedule=step"], r"optim.schedule: expected 'cosine' or 'multistep', got 'step'"),
    (["optim.gamma=1.5"], r"optim.gamma: expected a number less than or equal to 1, got 1.5"),
    (["optim.milestones=[180,150]"], r"optim.milestones must be increasing epochs, got \[180, 150\]"),
    (["dgkd.drop_prob=1"], r"dgkd.drop_prob: expected a number less than 1, got 1.0"),
    (["amal.unit=batch"], r"amal.unit: expected 'epoch' or 'step', got 'batch'"),
    (["schedule_scale=0"], r"schedule_scale: expected a number greater than 0, got 0.0"),
])
def test_kd_refuses_values_out_of_range(refused, overrides, message):
    assert re.search(message, refused("kd", *overrides))


def test_train_teacher_refuses_a_teacher_from_another_run(refused, tmp_path):
    line = refused("train_teacher", f"teacher.from_run={tmp_path / 'nowhere'}")
    assert "teacher.from_run: train_teacher trains a teacher; leave it empty" in line


def test_kd_refuses_a_teacher_source_that_is_not_a_kd_run(refused, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.yaml").write_text("{}\n")
    line = refused("kd", f"teacher.from_run={tmp_path / 'other'}")
    assert "is not a kd or train_teacher run" in line


@pytest.mark.parametrize("overrides, message", [
    ([], r"source_run: expected at least 1 character, got ''"),  # the default names no run
    (["fraction=0"], r"fraction: expected a number greater than 0, got 0.0"),
    (["strategies=[lambda_sq,best]"], r"strategies\[1\]: expected 'lambda_sq', .* got 'best'"),
    (["ratio_floor=0"], r"ratio_floor: expected a number greater than 0, got 0.0"),
])
def test_coreset_refuses_values_out_of_range(refused, overrides, message):
    assert re.search(message, refused("coreset", *overrides))


@pytest.mark.parametrize("override, message", [
    ("optim.lr=0", r"optim.lr: expected a number greater than 0, got 0.0"),
    ("optim.schedule=multistep", r"optim.schedule: expected 'cosine', got 'multistep'"),
    ("data.labeled=0", r"data.labeled: expected a number greater than 0, got 0"),
    ("weights.k=-1", r"weights.k: expected a number greater than or equal to 0, got -1"),
    ("weights.confidence=max", r"weights.confidence: expected 'margin' or 'entropy', got 'max'"),
    ("distill.temperature=0", r"distill.temperature: expected a number greater than 0, got 0.0"),
    ("student.distill_epochs=0", r"student.distill_epochs: expected a number greater than 0, got 0"),
])
def test_wdue_refuses_values_out_of_range(refused, override, message):
    assert re.search(message, refused("wdue", override))


def test_coreset_defaults_fit_its_schema_given_a_source_run(tmp_path):
    """coreset.yaml names no source run (it is the one key a user must give); with one it validates."""
    (tmp_path / "config.yaml").write_text("{}\n")
    recipe = discover_recipes(only="coreset")["coreset"]
    validate_config(recipe.schema, {**recipe.load_defaults(), "source_run": str(tmp_path)})


def test_tools_run_py_refuses_a_bad_value_in_one_line_and_leaves_no_folder(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "run.py"), "kd_digits", "optim.lr=0",
                           "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == ["run.py: config error: optim.lr: expected a number greater than 0, "
                                        "got 0.0"]
    assert done.stdout == "" and not run_dir.exists()


def test_show_config_prints_each_key_with_its_default_and_meaning(capsys):
    assert launch(["kd_digits", "--show-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (lr,) = [line for line in lines if line.startswith("optim.lr ")]
    assert re.fullmatch(r"optim.lr = 0.05 +# learning rate", lr)
    assert any(re.fullmatch(r"data.label_noise = 0.4 +# symmetric noise .*", line) for line in lines)


def test_show_config_shows_the_overridden_value(capsys):
    assert launch(["kd_digits", "optim.lr=0.1", "--show-config"]) == 0
    assert any(line.startswith("optim.lr = 0.1 ") for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("name", VISION)
def test_every_key_of_every_recipe_has_a_meaning(name):
    recipe = discover_recipes(only=name)[name]
    defaults = recipe.load_defaults()
    rows = recipe.describe(defaults)
    assert [key for key, _, _ in rows] == list(flat_config(defaults))
    assert [key for key, _, meaning in rows if not meaning] == []
