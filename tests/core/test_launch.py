"""The launcher: config overrides are checked before any work, and a run folder is reusable."""

import json

import pytest

from metaloss.core.harness import launch
from metaloss.core.harness.config import ConfigError, apply_config_file, resolve_config
from metaloss.core.harness.launch import Recipe, main

DEFAULTS = {
    "output_dir": "runs",
    "epochs": 3,
    "verbose": False,
    "name": "toy",
    "init": [0.1, 0.9],
    "extra": None,
    "optim": {"lr": 0.1, "batch_size": 8},
}


def test_nested_override_casts_int_to_float():
    config = resolve_config(DEFAULTS, ["optim.lr=1", "epochs=5", "init=[0, 1]", "extra=[a]"])
    assert config["optim"] == {"lr": 1.0, "batch_size": 8}
    assert isinstance(config["optim"]["lr"], float)
    assert config["epochs"] == 5
    assert config["init"] == [0.0, 1.0] and all(isinstance(v, float) for v in config["init"])
    assert config["extra"] == ["a"]  # a default of None takes anything
    assert DEFAULTS["optim"]["lr"] == 0.1, "the defaults must not be modified"


def test_section_override_with_a_mapping_merges_known_keys():
    config = resolve_config(DEFAULTS, ["optim={lr: 2}"])
    assert config["optim"] == {"lr": 2.0, "batch_size": 8}


@pytest.mark.parametrize(
    "override, words",
    [
        ("epoch=3", ["'epoch'", "output_dir", "epochs", "optim"]),
        ("optim.momentum=0.9", ["'optim.momentum'", "'optim'", "lr", "batch_size"]),
        ("optim={momentum: 0.9}", ["'optim.momentum'", "lr", "batch_size"]),
    ],
)
def test_unknown_key_names_the_valid_keys(override, words):
    with pytest.raises(ConfigError) as err:
        resolve_config(DEFAULTS, [override])
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("epochs=abc", "epochs", "int"),
        ("epochs=2.5", "epochs", "int"),
        ("epochs=true", "epochs", "int"),
        ("optim.lr=true", "optim.lr", "float"),
        ("verbose=1", "verbose", "bool"),
        ("name=3", "name", "str"),
        ("init=0.5", "init", "list"),
        ("init=[0.5, x]", "init[1]", "float"),
        ("optim=0.1", "optim", "section"),
        ("epochs.x=1", "epochs", "not a section"),
    ],
)
def test_wrong_type_names_the_key_and_the_expected_type(override, key, expected):
    with pytest.raises(ConfigError) as err:
        resolve_config(DEFAULTS, [override])
    assert key in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("override", ["epochs", "=3", "optim..lr=1", "epochs=[1,"])
def test_malformed_override_is_a_config_error(override):
    with pytest.raises(ConfigError, match="override"):
        resolve_config(DEFAULTS, [override])


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- main() with a fake recipe -------------------------------------------------------------


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A two-method, two-seed recipe; returns the list its ``main`` appends each run to."""
    config_path = tmp_path / "toy.yaml"
    config_path.write_text(
        f"output_dir: {tmp_path / 'runs'}\nseeds: [0, 1]\nmethods: [a, b]\nepochs: 3\n"
        "optim:\n  lr: 0.5\n"
    )
    calls = []

    def run_toy(run):
        calls.append(run)
        for seed in run.config["seeds"]:
            for method in run.config["methods"]:
                unit = run.unit(method, seed)
                if unit.done:
                    continue
                for epoch in range(run.config["epochs"]):
                    acc = run.config["optim"]["lr"] * (epoch + 1) + seed
                    run.log({"method": method, "seed": seed, "epoch": epoch, "acc": acc})
                    unit.save_checkpoint({"epoch": epoch})
                unit.finish({"acc": acc})

    recipe = Recipe("toy", "a toy recipe", config_path, run_toy)
    monkeypatch.setattr(launch, "discover_recipes", lambda only=None: {"toy": recipe})
    return calls


def test_list_prints_names_and_descriptions(toy, capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "a toy recipe" in out


def test_unknown_recipe_exits_2_and_names_the_known_ones(toy, capsys):
    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "toy" in err
    assert toy == []


@pytest.mark.parametrize("override", ["epochs=abc", "optim.momentum=0.9", "epochs"])
def test_bad_override_fails_before_the_recipe_runs(toy, capsys, override):
    assert main(["toy", override]) == 2
    assert "config error" in capsys.readouterr().err
    assert toy == [], "the recipe must not start"


def test_a_run_writes_its_folder_and_the_same_command_reuses_it(toy, tmp_path, capsys):
    argv = ["toy", "optim.lr=1", "epochs=2"]
    assert main(argv) == 0
    (run,) = toy
    assert run.dir.parent == tmp_path / "runs" and run.dir.name.startswith("toy-")
    assert run.config["optim"]["lr"] == 1.0 and run.config["epochs"] == 2
    for name in ("config.yaml", "metrics.jsonl", "results.json", "summary.md", "plots/acc.png"):
        assert (run.dir / name).is_file(), name
    results = json.loads((run.dir / "results.json").read_text())
    assert [(r["method"], r["seed"], r["acc"]) for r in results] == [
        ("a", 0, 2.0), ("b", 0, 2.0), ("a", 1, 3.0), ("b", 1, 3.0)
    ]
    summary = (run.dir / "summary.md").read_text()
    assert "| a | 2 | 2.500 ± 0.707 |" in summary
    assert "| a | 2 | 2.500 ± 0.707 |" in capsys.readouterr().out
    lines = (run.dir / "metrics.jsonl").read_text().splitlines()

    assert main(argv) == 0
    assert toy[1].dir == run.dir, "the same command must resume the same folder"
    assert (run.dir / "metrics.jsonl").read_text().splitlines() == lines, "done units rerun"

    assert main(["toy", "epochs=2"]) == 0
    assert toy[2].dir != run.dir, "another config gets another folder"


def test_run_dir_of_another_config_is_an_error(toy, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    assert main(["toy", "--run-dir", str(run_dir), "epochs=1"]) == 0
    assert toy[0].dir == run_dir
    assert main(["toy", "epochs=2", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "epochs: 1 in the folder, 2 now" in err
    assert len(toy) == 1


def test_a_run_folder_grows_by_seeds_and_methods_and_runs_only_the_new_units(toy, tmp_path):
    run_dir = tmp_path / "mine"
    assert main(["toy", "--run-dir", str(run_dir), "seeds=[0]", "methods=[a]"]) == 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert main(["toy", "--run-dir", str(run_dir), "seeds=[0, 1]", "methods=[a, b]"]) == 0
    grown = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert grown[:len(lines)] == lines
    ran = {(json.loads(line)["method"], json.loads(line)["seed"]) for line in grown[len(lines):]}
    assert ran == {("b", 0), ("a", 1), ("b", 1)}, "the finished unit (a, 0) must not rerun"
    results = json.loads((run_dir / "results.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in results) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert "seeds:\n- 0\n- 1\n" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("override, shown", [("seeds=[1]", "seeds: [0, 1] in the folder, [1] now"),
                                             ("methods=[b]", "methods: ['a', 'b'] in the folder, ['b'] now")])
def test_a_run_folder_refuses_to_drop_seeds_or_methods(toy, tmp_path, capsys, override, shown):
    run_dir = tmp_path / "mine"
    assert main(["toy", "--run-dir", str(run_dir)]) == 0
    assert main(["toy", "--run-dir", str(run_dir), override]) == 2
    err = capsys.readouterr().err
    assert shown in err and "dropping is not" in err
    assert len(toy) == 1


def test_recipe_validates_its_fields(tmp_path):
    with pytest.raises(TypeError, match="main must be callable"):
        Recipe("x", "d", tmp_path / "x.yaml", main=None)
    with pytest.raises(ValueError, match="name"):
        Recipe("", "d", tmp_path / "x.yaml", main=print)


def test_discover_rejects_an_entry_point_that_is_not_a_recipe(monkeypatch):
    class EntryPoint:
        name, value = "bad", "somewhere:THING"

        def load(self):
            return object()

    monkeypatch.setattr(launch, "entry_points", lambda group: [EntryPoint()])
    with pytest.raises(TypeError, match="'bad'"):
        launch.discover_recipes()


def test_config_file_overrides_are_checked_like_key_value(tmp_path):
    defaults = {"a": 1, "sec": {"x": 0.5, "name": "n"}, "items": [1, 2]}
    good = tmp_path / "good.yaml"
    good.write_text("sec:\n  x: 2\nitems: [3]\n")
    config = apply_config_file(defaults, good)
    assert config == {"a": 1, "sec": {"x": 2.0, "name": "n"}, "items": [3]}
    assert defaults["sec"]["x"] == 0.5  # the defaults are not modified
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("sec:\n  y: 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'sec.y'"):
        apply_config_file(defaults, bad_key)
    bad_type = tmp_path / "bad_type.yaml"
    bad_type.write_text("a: one\n")
    with pytest.raises(ConfigError, match="a: expected int"):
        apply_config_file(defaults, bad_type)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        apply_config_file(defaults, not_mapping)
    with pytest.raises(ConfigError, match="does not exist"):
        apply_config_file(defaults, tmp_path / "missing.yaml")
