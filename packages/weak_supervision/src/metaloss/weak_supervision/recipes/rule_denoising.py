"""Rule denoising with AMAL on the SPEAR objective (AMAL paper §4.2, §5.3, Table 2).

For every dataset and seed, one feature model per method learns from the small
labeled set L, the unlabeled set U and the labeling functions' outputs; the
epoch is selected on V (the size of L) and the test metric is reported there.

- ``only_l``: CE on L only (the table's reference row).
- ``spear``: the joint objective of ``spear.py`` with every weight 1 (Maheshwari et al. 2021).
- ``l2r``: the same two feature-model losses, their per-example sum reweighted per
  batch by Learning to Reweight (Ren et al. 2018).
- ``mwnet``: the same, weighted by a Meta-Weight-Net of the example's loss (Shu et al. 2019).
- ``amal``: per-example (lambda_p, lambda_a) on (L1/L3, L4), learned on V every L
  epochs by core's ``AMAL`` (last-layer look-ahead: exact for logistic regression).
  The lambda learning rate is AMAL's one free knob and its scale differs between
  datasets, so ``amal.lr`` is a list: one unit ``amal_lr<lr>`` per value, and the
  ``amal`` row reports, per dataset and seed, the one with the best V score.

The graphical model (CAGE) is first fitted on L and U, then trains jointly with
the feature model (L2, L4, quality guides) in every method but ``only_l``.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from sklearn.metrics import f1_score

from metaloss.core import (
    AMAL,
    Lookahead,
    MetaWeightNet,
    cross_entropy,
    epoch_batches,
    l2r_weights,
    mix_losses,
)
from metaloss.core.harness import (
    Run,
    Selected,
    Unit,
    predict,
    seed_everything,
    sgd_epoch,
    train_epochs,
)

from ..cage import CAGE
from ..data import RuleData, load_rule_dataset
from ..features import make_features
from ..labeling import ABSTAIN
from ..models import FeatureModel
from ..spear import UNLABELED, SpearObjective


def main(run: Run) -> None:
    cfg = run.config
    # The models are tiny (one linear layer, a C x m CAGE table): extra threads only add overhead.
    torch.set_num_threads(cfg["threads"])
    for dataset in cfg["datasets"]:
        for seed in cfg["seeds"]:
            units = {m: run.unit(f"{dataset}-{m}", seed) for m in cfg["methods"]}
            if all(u.done for u in units.values()):
                continue
            data = load_rule_dataset(dataset, seed, cfg["data"]["root"])
            if cfg["data"]["unlabeled"] == "covered":  # U only where some LF fires
                covered = (data.unlabeled.weak_labels != ABSTAIN).any(1)
                data.unlabeled = data.unlabeled.subset(np.flatnonzero(covered))
            features = _features(cfg, data)
            for method, unit in units.items():
                if unit.done:
                    continue
                if method == "amal":  # a choice among finished units, not a training of its own
                    unit.finish(_select_amal(run, dataset, seed, data, features))
                else:
                    unit.train_or_load(None, partial(train_method, run, unit, method, data, features))


def _select_amal(run: Run, dataset: str, seed: int, data: RuleData, features: dict) -> dict:
    """Train AMAL at every ``amal.lr``; return the result with the best validation score."""
    candidates = []
    for lr in run.config["amal"]["lr"]:
        unit = run.unit(f"{dataset}-amal_lr{lr:g}", seed)
        train = partial(train_method, run, unit, "amal", data, features, amal_lr=lr)
        candidates.append({**unit.train_or_load(None, train), "amal_lr": lr})
    return max(candidates, key=lambda r: r["val_score"])  # the first (smallest lr) on ties


def _features(cfg: dict, data: RuleData) -> dict[str, torch.Tensor]:
    f = cfg["features"]
    kind = f["kind"] if f["kind"] != "auto" else ("shipped" if data.name == "imdb" else "tfidf")
    return make_features(data, kind, max_features=f["max_features"], model_dir=f["model_dir"])


def score(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, metric: str) -> float:
    """The dataset's metric of ``model`` on (x, y): accuracy, or macro-F1 over the classes."""
    pred = predict(model, [x]).argmax(1).numpy()
    if metric == "accuracy":
        return float((pred == y).mean())
    return float(f1_score(y, pred, average="macro", labels=np.unique(np.concatenate([y, pred]))))


def train_method(run: Run, unit: Unit, method: str, data: RuleData, features: dict,
                 amal_lr: float | None = None) -> Selected:
    """Train one feature model by ``method``; return what ``train_epochs`` selected on V."""
    cfg = run.config
    seed_everything(unit.seed)
    only_l = method == "only_l"
    x_train = features["labeled"] if only_l else torch.cat([features["labeled"], features["unlabeled"]])
    weak = torch.as_tensor(np.concatenate([data.labeled.weak_labels, data.unlabeled.weak_labels]))
    targets = torch.cat([torch.as_tensor(data.labeled.labels),
                         torch.full((len(data.unlabeled),), UNLABELED, dtype=torch.long)])
    x_val, y_val = features["validation"], torch.as_tensor(data.validation.labels)

    model = FeatureModel(x_train.shape[1], data.num_classes, cfg["model"]["hidden"], cfg["model"]["dropout"])
    o = cfg["optim"]
    optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"],
                                weight_decay=o["weight_decay"])
    stateful: dict[str, object] = {"optimizer": optimizer}
    objective = gm_optimizer = amal = vnet = None
    if not only_l:
        gm = CAGE(data.num_classes, data.lf_classes, quality_guides=cfg["gm"]["quality_guide"])
        gm.fit(data.unlabeled.weak_labels, labeled_weak_labels=data.labeled.weak_labels,
               labeled_labels=data.labeled.labels, epochs=cfg["gm"]["pretrain_epochs"], lr=cfg["gm"]["lr"])
        objective = SpearObjective(gm, weak, targets)
        gm_optimizer = torch.optim.Adam(gm.parameters(), lr=cfg["gm"]["lr"])
        stateful |= {"gm": gm, "gm_optimizer": gm_optimizer}
    if method == "amal":
        a = cfg["amal"]
        amal = AMAL(len(x_train), 1, lr=amal_lr, every=a["every"], init=a["init"], mode=a["mode"],
                    lower=a["lower"], upper=a["upper"], inner_steps=a["inner_steps"])
        stateful["amal"] = amal.weights
    if method == "mwnet":
        vnet = MetaWeightNet(cfg["mwnet"]["hidden"], lr=cfg["mwnet"]["lr"])
        stateful["mwnet"] = vnet

    def fixed_gm_losses(z, idx):  # the look-ahead moves theta only
        return objective.feature_losses(z, idx, gm_grad=False)

    def val_loss(z):
        return cross_entropy(z, y_val).mean()

    def batches(epoch: int):
        return epoch_batches(len(x_train), o["batch_size"], seed=unit.seed, epoch=epoch)

    def epoch_fn(epoch: int) -> dict:
        metrics = {}
        if amal is not None and amal.due(epoch):
            metrics |= amal.meta_phase(
                model,
                lambda: ((idx, x_train[idx], lambda z, idx=idx: fixed_gm_losses(z, idx))
                         for idx in batches(epoch)),
                [(x_val, y_val)], lookahead=Lookahead.from_optimizer(optimizer))
        def batch_loss(idx, x):
            if only_l:
                return cross_entropy(model(x), targets[idx]).mean()
            loss = _feature_loss(method, model, x, idx, objective, amal, vnet, x_val, val_loss, optimizer)
            return loss + objective.gm_loss(idx)

        train_loss = sgd_epoch(((idx, x_train[idx]) for idx in batches(epoch)), batch_loss,
                               [optimizer] if only_l else [optimizer, gm_optimizer])
        return {**metrics, "train_loss": train_loss,
                "val_score": score(model, x_val, data.validation.labels, data.metric)}

    return train_epochs(unit, model=model, stateful=stateful, epochs=o["epochs"], epoch_fn=epoch_fn,
                        val_key="val_score", test_key="test_score", log=run.log,
                        test_fn=lambda: score(model, features["test"], data.test.labels, data.metric),
                        progress=lambda it: run.progress(it, desc=f"{unit.method} seed {unit.seed}",
                                                         leave=False))


def _feature_loss(method, model, x, idx, objective, amal, vnet, x_val, val_loss, optimizer) -> torch.Tensor:
    """The feature model's weighted (L1/L3, L4) loss on one batch for ``method``."""
    columns = objective.feature_losses(model(x), idx)
    if method == "spear":
        weights = torch.ones_like(columns)
    elif method == "amal":
        weights = amal.weights(idx).to(columns)
    else:
        def summed(z):
            return objective.feature_losses(z, idx, gm_grad=False).sum(1)

        lookahead = Lookahead.from_optimizer(optimizer)
        if method == "l2r":  # weights sum to 1 over the batch; mix_losses takes the batch mean
            w = l2r_weights(model, x, summed, x_val, val_loss, lookahead=lookahead, mode="last_layer")
            w = w * len(idx)
        else:
            vnet.meta_step(model, x, summed, x_val, val_loss, lookahead=lookahead, mode="last_layer")
            w = vnet(columns.sum(1))
        weights = w.detach().to(columns).unsqueeze(1).expand_as(columns)
    return mix_losses(columns, weights)

