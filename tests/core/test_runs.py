"""The run folder: checkpoints resume bit-identically, writes are atomic, results mark done."""

import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from metaloss.core.harness import (
    Run,
    capture_rng_state,
    restore_rng_state,
    seed_everything,
)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return Run(tmp_path / "run", {"output_dir": str(tmp_path)}, "toy")


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_checkpoint_round_trip_restores_the_rng(run):
    seed_everything(0)
    torch.rand(5)  # move the generators away from the seeded state
    unit = run.unit("amal", 0)
    unit.save_checkpoint({"epoch": 4, "weights": torch.arange(3.0)})
    py, npy, after_save = _draws()

    state = unit.load_checkpoint()
    assert state["epoch"] == 4 and torch.equal(state["weights"], torch.arange(3.0))
    py2, npy2, after_load = _draws()
    assert torch.equal(after_save, after_load)
    assert (py, npy) == (py2, npy2)


def test_checkpoint_write_is_atomic_and_keeps_no_temporary_file(run):
    unit = run.unit("ce", 1)
    unit.save_checkpoint({"epoch": 0})
    unit.save_checkpoint({"epoch": 1})
    files = sorted(p.name for p in (run.dir / "checkpoints").iterdir())
    assert files == ["ce-seed1.pt"]
    assert unit.load_checkpoint()["epoch"] == 1


def test_no_checkpoint_loads_as_none(run):
    assert run.unit("ce", 0).load_checkpoint() is None


def test_reserved_checkpoint_key_is_rejected(run):
    with pytest.raises(ValueError, match="'rng'"):
        run.unit("ce", 0).save_checkpoint({"rng": 1})


def test_finish_marks_the_unit_done_and_keeps_the_checkpoint(run):
    unit = run.unit("kd", 2)
    assert not unit.done and unit.result is None
    unit.save_checkpoint({"epoch": 9})
    unit.finish({"test_acc": torch.tensor(0.5), "best_epoch": np.int64(3), "loss": math.nan})
    again = run.unit("kd", 2)
    assert again.done
    assert again.result == {"method": "kd", "seed": 2, "test_acc": 0.5, "best_epoch": 3,
                            "loss": None}
    assert (run.dir / "checkpoints" / "kd-seed2.pt").exists()
    assert sorted(p.name for p in (run.dir / "results").iterdir()) == ["kd-seed2.json"]


def test_finish_rejects_reserved_keys_and_non_scalars(run):
    unit = run.unit("kd", 0)
    with pytest.raises(ValueError, match="method"):
        unit.finish({"method": "x"})
    with pytest.raises(TypeError, match="scalar"):
        unit.finish({"weights": torch.zeros(3)})
    assert not unit.done


@pytest.mark.parametrize("method", ["", "a/b", "..", 3])
def test_unit_rejects_bad_methods(run, method):
    with pytest.raises(ValueError, match="method"):
        run.unit(method, 0)


@pytest.mark.parametrize("seed, error", [("0", TypeError), (True, TypeError), (-1, ValueError)])
def test_unit_rejects_bad_seeds(run, seed, error):
    with pytest.raises(error, match="seed"):
        run.unit("ce", seed)


def test_log_appends_json_lines_with_time(run):
    run.log({"method": "ce", "epoch": np.int64(0), "acc": torch.tensor(0.25), "nan": math.nan})
    run.log({"method": "ce", "epoch": 1, "acc": 0.5})
    records = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["acc"]) for r in records] == [(0, 0.25), (1, 0.5)]
    assert records[0]["nan"] is None
    assert all(isinstance(r["time"], float) for r in records)
    with pytest.raises(ValueError, match="time"):
        run.log({"time": 1})


def test_rank_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    other = Run(tmp_path / "r", {}, "toy")
    assert (other.rank, other.world_size, other.is_main) == (1, 2, False)
    unit = other.unit("ce", 0)
    unit.save_checkpoint({"epoch": 0})
    unit.finish({"acc": 1.0})
    other.log({"acc": 1.0})
    other.finalize()
    assert not (tmp_path / "r").exists(), "only rank 0 writes"
    assert list(other.progress([1, 2])) == [1, 2]


def _same(a, b):
    return a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_seed_everything_and_rng_state_round_trip():
    seed_everything(7)
    first = _draws()
    seed_everything(7)
    state = capture_rng_state()
    assert _same(_draws(), first), "the same seed gives the same draws"
    assert not _same(_draws(), first)
    restore_rng_state(state)
    assert _same(_draws(), first), "restoring puts every generator back"
    with pytest.raises(ValueError, match="capture_rng_state"):
        restore_rng_state({"torch": 1})


def test_core_imports_with_only_torch_numpy_and_scikit_learn():
    # The launch extra and every domain library are blocked: all of metaloss.core must import,
    # but for the config schemas, which need pydantic and say which extra provides it.
    code = (
        "import importlib, pkgutil, sys\n"
        "for name in ('yaml', 'matplotlib', 'tqdm', 'accelerate', 'pydantic', 'timm', 'torchvision',\n"
        "             'transformers', 'datasets', 'pyarrow'):\n"
        "    sys.modules[name] = None\n"
        "import metaloss.core\n"
        "needs_extra = []\n"
        "for mod in pkgutil.walk_packages(metaloss.core.__path__, 'metaloss.core.'):\n"
        "    try:\n"
        "        importlib.import_module(mod.name)\n"
        "    except ImportError as err:\n"
        "        assert 'pip install metaloss-core[launch]' in str(err), (mod.name, err)\n"
        "        needs_extra.append(mod.name)\n"
        "assert needs_extra == ['metaloss.core.harness.schema'], needs_extra\n"
        "try:\n"
        "    metaloss.core.harness.config.resolve_config({'a': 1}, ['a=2'])\n"
        "except ImportError as err:\n"
        "    assert 'pip install metaloss-core[launch]' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('resolve_config needs yaml')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class _Table:
    """A recipe object with a state: what a finished unit gives back through ``restore``."""

    def __init__(self, value=0.0):
        self.value = torch.tensor(value)

    def state_dict(self):
        return {"value": self.value.clone()}

    def load_state_dict(self, state):
        self.value = state["value"].clone()


def test_a_finished_unit_restores_its_objects_after_its_checkpoint_is_dropped(run):
    from metaloss.core.harness.epochs import Selected

    unit = run.unit("mwnet", 0)
    model = torch.nn.Linear(2, 1)
    table = _Table()

    def train():
        table.value = torch.tensor(3.5)
        unit.save_checkpoint({"epoch": 0, "best_model": model.state_dict(), "table": table.state_dict()})
        return Selected({"best_epoch": 0, "val_acc": 0.5}, model.state_dict())

    assert unit.train_or_load(model, train, restore={"table": table})["val_acc"] == 0.5
    unit.checkpoint_path.unlink()  # a finished unit's checkpoint is not kept in the repository

    again = _Table()
    assert unit.restorable(names=["table"]) and not unit.restorable(model=True)
    unit.train_or_load(None, lambda: pytest.fail("a finished unit trains again"), restore={"table": again})
    assert again.value == 3.5
    with pytest.raises(FileNotFoundError, match="restorable"):
        unit.train_or_load(torch.nn.Linear(2, 1), train)  # its selected weights are gone with the checkpoint
    assert not unit.restorable(names=["other"])
    assert run.unit("ce", 0).restorable(model=True, names=["table"]), "a unit still to train has all to give"
    assert float(unit.saved_state("table")["value"]) == 3.5 and unit.saved_state("other") is None
