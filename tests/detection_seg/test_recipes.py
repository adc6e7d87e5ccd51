"""The detection and segmentation recipes on the committed COCO128 fixture: they train, report, draw,
resume a killed unit exactly, and refuse bad configs before any work."""

import json
import re
import shutil

import pytest
import torch
from accelerate import Accelerator

from metaloss.core.harness import Run
from metaloss.core.harness.config import resolve_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.detection_seg.data import DetectionImages, detection_transforms, fixture_root
from metaloss.detection_seg.recipes import detection, segmentation
from metaloss.detection_seg.training import dense_splits, fit_dense, shard, split_opener

# 9 train images with masks or labels: 5 to train, 2 meta, 2 selection; batches of 2 at 64 px
TINY = ["seeds=[0]", "data.image_size=64", "data.val_size=2", "data.meta_size=2", "model.epochs=2",
        "optim.batch_size=2", "optim.warmup_epochs=1", "l2t_dln.unroll_steps=2", "l2t_dln.val_batch=2",
        "plot_images=2"]
SMALL_MODELS = {"detection": ["model.width=16"], "segmentation": ["model.head_width=16", "model.aux_width=8",
                                                                   "loss.loss_stride=4"]}


def _config(recipe, tmp_path, *overrides):
    defaults = discover_recipes()[recipe].load_defaults()
    paths = [f"data.root={fixture_root()}", f"output_dir={tmp_path}"]
    return resolve_config(defaults, [*paths, *TINY, *SMALL_MODELS[recipe], *overrides])


@pytest.mark.slow
@pytest.mark.parametrize("recipe, module, select, methods", [
    ("detection", detection, "map_50", ["standard", "dln", "l2t_dln", "amal"]),
    ("segmentation", segmentation, "miou", ["standard", "dln", "l2t_dln"])])
def test_each_method_trains_reports_draws_and_resumes_nothing(tmp_path, recipe, module, select, methods):
    every_epoch = ["amal.every=1"] if "amal" in methods else []
    cfg = _config(recipe, tmp_path, f"methods=[{','.join(methods)}]", *every_epoch)
    run = Run(tmp_path / "run", cfg, recipe)
    module.main(run)
    run.finalize()
    results = {r["method"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    assert results.keys() == set(methods)
    for r in results.values():
        assert r["best_epoch"] in (0, 1)
        for split in ("val", "test", "train", "last_test"):
            assert 0 <= r[f"{split}_{select}"] <= 1
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for method in ("dln", "l2t_dln"):  # the teacher moved the DLN every epoch
        rows = [r for r in records if r.get("method") == method]
        assert len(rows) == 2 and all(r["dln_change"] > 0 and r["dln_grad_norm"] > 0 for r in rows)
    picture = "detections" if recipe == "detection" else "segmentations"
    for method in results:
        assert (tmp_path / "run" / "plots" / f"{picture}_{method}.png").stat().st_size > 0
    if "amal" in methods:
        assert (tmp_path / "run" / "plots" / "part_weights_amal.png").stat().st_size > 0
    state = torch.load(tmp_path / "run" / "checkpoints" / "l2t_dln-seed0.pt", weights_only=False)
    assert {"dln", "lstm", "lstm_state", "optimizer"} <= state["l2t"].keys()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    module.main(Run(tmp_path / "run", cfg, recipe))  # every unit is done: nothing retrains
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    shutil.rmtree(tmp_path / "run" / "checkpoints")  # the repository keeps no finished unit's checkpoint
    module.main(Run(tmp_path / "run", cfg, recipe))  # still reports, without retraining or redrawing
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}


class _Killed(RuntimeError):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("method, override", [("l2t_dln", "l2t_dln.teach_every=2"), ("amal", "amal.every=1")])
def test_a_killed_detector_resumes_to_the_uninterrupted_model(tmp_path, method, override):
    cfg = _config("detection", tmp_path, override)
    mean, std = (0.5,) * 3, (0.5,) * 3
    open_split = split_opener(cfg["data"], (mean, std), transforms=detection_transforms,
                              coco128=DetectionImages, voc=None)
    splits = dense_splits(open_split, cfg["data"], seed=0)
    task = detection.detection_task(cfg, 80)

    def train(folder, die_at_epoch=None):
        run = Run(tmp_path / folder, cfg, "detection")
        if die_at_epoch is not None:
            log = run.log

            def dying_log(record):
                log(record)
                if record.get("epoch") == die_at_epoch:
                    raise _Killed
            run.log = dying_log
        return fit_dense(run, run.unit(method, 0), task, splits, cfg, Accelerator())

    straight = train("straight")
    with pytest.raises(_Killed):
        train("killed", die_at_epoch=0)  # after the first epoch's checkpoint
    resumed = train("killed")
    assert resumed.metrics == straight.metrics
    assert all(torch.equal(resumed.state[k], straight.state[k]) for k in straight.state)
    if method == "amal":  # each epoch's meta phase moved every training image's weights, differently,
        # down from 1 (the default bound stops those pushed up)
        lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [all(r[f"weight_{p}"] < 1 for p in ("loc", "cls", "conf")) for r in records] == [True, True]
        table = torch.load(tmp_path / "straight" / "checkpoints" / "amal-seed0.pt",
                           weights_only=False)["amal"]["table"]
        assert table.shape == (5, 3) and table.min() >= 0 and table.max() <= 1  # amal.upper = 1
        assert (table < 1).any(dim=1).all() and len(set(table[:, 0].tolist())) == 5


def test_the_splits_are_disjoint_and_the_shards_cover_an_epoch_once():
    cfg = _config("detection", "/tmp")
    open_split = split_opener(cfg["data"], ((0.5,) * 3, (0.5,) * 3), transforms=detection_transforms,
                              coco128=DetectionImages, voc=None)
    splits = dense_splits(open_split, cfg["data"], seed=3)
    parts = [set(splits.train.indices), set(splits.meta.indices), set(splits.val.indices)]
    assert [len(p) for p in parts] == [5, 2, 2] and set().union(*parts) == set(range(9))
    assert splits.train_eval.indices == splits.train.indices and len(splits.test) == 4
    assert dense_splits(open_split, cfg["data"], seed=3).val.indices == splits.val.indices  # seeded
    shares = [shard(9, seed=0, epoch=1, rank=r, world_size=2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 4 and not set(shares[0]) & set(shares[1])
    assert shard(9, seed=0, epoch=2, rank=0, world_size=2) != shares[0]  # a new order each epoch


@pytest.mark.parametrize("recipe, override, match", [
    ("detection", ["data.image_size=100"], "multiple of 32"),
    ("detection", ["data.val_size=64", "data.meta_size=64"], "must leave training images out of the 128"),
    ("detection", ["model.backbone=resnet18"], "lite0_wheel holds tf_efficientnet_lite0 weights"),
    ("detection", ["methods=[standard,focal]"], "methods"),
    ("detection", ["loss.ignore_threshold=0"], "loss.ignore_threshold"),
    ("detection", ["amal.mode=last_layer"], "no single linear head"),
    ("segmentation", ["methods=[standard,amal]"], "amal mixes YOLOv3's loss parts"),
    ("segmentation", ["optim.batch_size=1"], "at least 2"),
    ("segmentation", ["model.pretrained=imagenet"], "model.pretrained"),
    ("segmentation", ["model.freeze_backbone=true", "model.pretrained=none"], "needs model.pretrained"),
])
def test_bad_configs_are_refused_before_any_work(refused, recipe, override, match):
    assert re.search(match, refused(recipe, *override))
