"""Do L2RW's example weights change with the look-ahead's mode or the meta batch's size?

The CPU reproduction runs l2rw in ``first_order`` mode against meta batches of 100 clean examples,
and l2rw stays far below CE. This script asks, on one l2rw unit's checkpoint (its model, and its SGD
with the momentum buffers and the learning rate it had), whether the ``exact`` look-ahead or a
larger meta batch would weight the training examples differently. At eps = 0, L2RW's look-ahead
step theta' = theta - lr (momentum * buf + weight_decay * theta) holds no example gradient, so the
two modes differ only in where the meta gradient is taken (theta' vs theta); the meta batch's size
sets how noisy it is. A finished unit's checkpoint holds the last epoch's tiny learning rate
(theta' = theta nearly); a checkpoint of a unit still in its first phase (lr 0.05) is the telling one.

For ``--batches`` seeded batches of the (un-augmented) training pool, the weights are computed under
every (mode, meta batch) pair. Printed per pair:

- ``zero``: share of examples with weight 0;
- ``clean_share_of_weight``: share of the total weight on clean labels (uniform weights give the
  clean share of the pool, ``clean_share_of_pool``);
- ``corr_vs_reference``: Pearson correlation of the weights with those of the last pair (exact,
  the largest meta batch), over all the batches' examples.

Both modes weight each training batch against the same draw of each meta batch size.

Training and meta data only.

    python benchmarks/l2rw_weight_modes.py results/noisy_labels_cifar10_cpu/instance --seed 1
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from metaloss.core import Lookahead, cross_entropy, l2r_weights
from metaloss.core.harness import open_run
from metaloss.core.harness.unit import MODEL
from metaloss.vision.models import create_model
from metaloss.vision.noisy_data import make_noisy_data
from metaloss.vision.noisy_methods import MetaBatches
from metaloss.vision.training import eval_batches, make_optimizer


def restored(run, seed: int, data):
    """The l2rw unit's checkpointed model, its SGD (momentum buffers, learning rate) and its epoch."""
    unit = run.unit("l2rw", seed)
    if not unit.checkpoint_path.exists():
        raise SystemExit(f"no l2rw checkpoint for seed {seed} in {run.dir}")
    state = unit.read_checkpoint()
    model = create_model(run.config["model"]["arch"], data)
    model.load_state_dict(state[MODEL])
    optimizer, _ = make_optimizer(model, run.config["optim"], epochs=1)
    optimizer.load_state_dict(state["optimizer"])
    return model.train(), optimizer, state["epoch"]  # training mode, as in the recipe (batch statistics)


def batch_weights(model, train_batch, meta_batch, lookahead: Lookahead, mode: str) -> torch.Tensor:
    (x, y), (x_meta, y_meta) = train_batch, meta_batch
    # the same per-example and meta losses as the recipe's l2rw
    return l2r_weights(model, x, lambda out: cross_entropy(out, y),
                       x_meta, lambda out: F.cross_entropy(out, y_meta), lookahead=lookahead, mode=mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--meta-batches", default="100,1000", help="comma-separated meta batch sizes")
    args = parser.parse_args()
    run = open_run(args.run_dir)
    data, truth = make_noisy_data(run.config, args.seed)
    if data.meta is None:
        raise SystemExit("this run's setting has no clean meta set (meta.size = 0)")
    model, optimizer, epoch = restored(run, args.seed, data)
    lookahead = Lookahead.from_optimizer(optimizer)
    pairs = [(mode, int(m)) for m in args.meta_batches.split(",") for mode in ("first_order", "exact")]
    pairs.sort(key=lambda p: (p[1], p[0] == "exact"))  # reference (exact, largest) last

    torch.manual_seed(args.seed)
    plain = data.train.with_transform(data.val.transform)
    order = torch.randperm(len(plain))
    batch = run.config["optim"]["batch_size"]
    if not 1 <= args.batches * batch <= len(plain):
        raise SystemExit(f"--batches must give 1 to {len(plain) // batch} batches of {batch} from the "
                         f"{len(plain)}-example pool, got {args.batches}")
    metas = {m: MetaBatches(data.meta, m, "cpu") for _, m in pairs}
    weights = {p: [] for p in pairs}
    corrupted = []
    for b in range(args.batches):
        rows = order[b * batch:(b + 1) * batch]
        x, y = next(iter(eval_batches(plain.subset(rows), workers=0)))
        corrupted.append(truth.corrupted[rows])
        drawn = {m: meta.next() for m, meta in metas.items()}  # both modes see the same meta batch
        for mode, meta_batch in pairs:
            weights[(mode, meta_batch)].append(
                batch_weights(model, (x, y), drawn[meta_batch], lookahead, mode))

    bad = torch.cat(corrupted)
    reference = torch.cat(weights[pairs[-1]]).double()
    print(f"l2rw seed {args.seed}, checkpoint after epoch {epoch}: {args.batches} batches of {batch}, "
          f"look-ahead lr {lookahead.lr}, clean_share_of_pool {float((~bad).double().mean()):.4f}")
    print("| mode | meta_batch | zero | clean_share_of_weight | corr_vs_reference |\n|---|---|---|---|---|")
    for pair in pairs:
        w = torch.cat(weights[pair]).double()
        corr = float(torch.corrcoef(torch.stack([w, reference]))[0, 1])
        print(f"| {pair[0]} | {pair[1]} | {float((w == 0).double().mean()):.4f} | "
              f"{float(w[~bad].sum() / w.sum()):.4f} | {corr:.4f} |")


if __name__ == "__main__":
    main()
