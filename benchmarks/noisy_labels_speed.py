"""Milliseconds per training iteration of every noisy_labels method, relative to CE (DML Table 6's shape).

One model, one batch of CIFAR-shaped inputs (random pixels: the cost does not depend on them), a
meta batch of the same size for the methods that read a clean meta set; every method is timed
side by side in one process, in alternating rounds so that machine drift hits all of them alike.
An iteration is everything a method does per training batch:

- ``ce`` / ``gce``: forward, loss, backward, SGD step;
- ``coteaching``: the same for two networks, plus the small-loss selection;
- ``l2rw``: core's ``l2r_weights`` (look-ahead on the meta batch), then the weighted step;
  ``l2rw_first_order``: the same with ``mode="first_order"``;
- ``mwnet``: ``MetaWeightNet.meta_step``, then the step on V-weighted losses;
- ``dml`` / ``dml_2nd``: core's ``MetaFeedback.step`` (a teacher of the same architecture; selection,
  the student's step on pseudo labels, the feedback, the teacher's step), first and second order;
- ``l2t_dln``: core's ``L2TDLN.teach`` on a window of K batches (the DLN's hypergradient through K
  look-ahead steps, the LSTM teacher's update and its own K-step look-ahead, the student's K steps),
  per batch: the round's time / K; ``l2t_dln_every4``: one teaching round and three rounds of the
  student's plain steps on the DLN (``l2t_dln.teach_every=4``), per batch: the time / 4K;
  ``dln``: the same round with Adam on the hypergradient in place of the LSTM;
- ``l2rw_higher`` / ``l2rw_torchopt``: the same L2RW meta step written with the ``higher`` and
  ``torchopt`` libraries (benchmark-only dependencies, ``requirements-bench.txt``), then the step.

``confident_learning`` trains with CE iterations (its cost is the k fold models: k - 1 / k of an
epoch each), so it is not a row here. Before timing, the three L2RW implementations are checked
to give the same example weights on the batch (float64, plain SGD look-ahead).

    python benchmarks/noisy_labels_speed.py [--models cifar_resnet8 cifar_wrn28_2] [--batch 100] \
        [--unroll-steps 15]
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import platform
import statistics
import time

import higher
import timm
import torch
import torch.nn.functional as F
import torchopt

import metaloss.vision  # noqa: F401  (registers the CIFAR models in timm)
from metaloss.core import (
    L2TDLN,
    Lookahead,
    MetaFeedback,
    MetaWeightNet,
    coteaching_keep_ratio,
    generalized_cross_entropy,
    l2r_weights,
    small_loss_mask,
)

LR = 0.05


def l2r_weights_higher(model, x, y, x_meta, y_meta, lr: float) -> torch.Tensor:
    """Ren et al.'s L2RW step with ``higher``: a differentiable SGD step on eps-weighted losses."""
    eps = torch.zeros(len(y), dtype=x.dtype, requires_grad=True)
    with higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=lr),
                              copy_initial_weights=False, track_higher_grads=True) as (fmodel, diffopt):
        diffopt.step((eps * F.cross_entropy(fmodel(x), y, reduction="none")).sum())
        (grad,) = torch.autograd.grad(F.cross_entropy(fmodel(x_meta), y_meta), eps)
    return _normalised(-grad)


def l2r_weights_torchopt(model, x, y, x_meta, y_meta, lr: float) -> torch.Tensor:
    """The same step with ``torchopt``'s ``MetaSGD``, restoring the model's weights afterwards."""
    saved = torchopt.extract_state_dict(model, by="copy")
    eps = torch.zeros(len(y), dtype=x.dtype, requires_grad=True)
    meta_opt = torchopt.MetaSGD(model, lr=lr)
    meta_opt.step((eps * F.cross_entropy(model(x), y, reduction="none")).sum())
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_meta), y_meta), eps)
    torchopt.recover_state_dict(model, saved)
    return _normalised(-grad)


def l2r_weights_ours(model, x, y, x_meta, y_meta, lookahead, mode="exact") -> torch.Tensor:
    return l2r_weights(model, x, lambda z: F.cross_entropy(z, y, reduction="none"), x_meta,
                       lambda z: F.cross_entropy(z, y_meta), lookahead=lookahead, mode=mode)


def _normalised(raw: torch.Tensor) -> torch.Tensor:
    w = raw.clamp_min(0)
    return w / w.sum() if w.sum() > 0 else w


def check_same_weights(arch: str, batch: int) -> float:
    """Max |difference| of the three L2RW implementations' weights (float64, BatchNorm in training mode)."""
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10).double().train()
    x, x_meta = (torch.randn(batch, 3, 32, 32, dtype=torch.float64) for _ in range(2))
    y, y_meta = torch.randint(0, 10, (batch,)), torch.randint(0, 10, (batch,))
    # BatchNorm's running statistics do not enter a training-mode forward, so a peer that moves them
    # does not change the weights the next one computes
    ours = l2r_weights_ours(model, x, y, x_meta, y_meta, Lookahead(LR))
    peers = [peer(model, x, y, x_meta, y_meta, LR) for peer in (l2r_weights_higher, l2r_weights_torchopt)]
    diff = max(float((ours - p).abs().max()) for p in peers)
    scale = float(ours.abs().max())
    if not diff <= 1e-6 * max(scale, 1e-12) + 1e-9:
        raise AssertionError(f"{arch}: L2RW weights differ between implementations by {diff:.3g} (max weight "
                             f"{scale:.3g})")
    return diff


def iterations(arch: str, batch: int, unroll_steps: int) -> dict:
    """name -> a function running one training iteration of that method (each on its own model copy);
    a function that runs several (an L2T-DLN round) says how many in its ``batches`` attribute."""
    torch.manual_seed(0)
    base = timm.create_model(arch, num_classes=10)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    x_meta, y_meta = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def new():
        model = copy.deepcopy(base).train()
        return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)

    def step(optimizer, loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def plain(loss_fn):
        model, optimizer = new()
        return lambda: step(optimizer, loss_fn(model(x), y).mean())

    def coteaching():
        (m1, o1), (m2, o2) = new(), new()
        keep = coteaching_keep_ratio(20, 0.4, 10)

        def run():
            l1 = F.cross_entropy(m1(x), y, reduction="none")
            l2 = F.cross_entropy(m2(x), y, reduction="none")
            loss = l1[small_loss_mask(l2, keep)].mean() + l2[small_loss_mask(l1, keep)].mean()
            o1.zero_grad(), o2.zero_grad()
            loss.backward()
            o1.step(), o2.step()
        return run

    def l2rw(weights_fn):
        model, optimizer = new()

        def run():
            w = weights_fn(model, optimizer)
            step(optimizer, (w * F.cross_entropy(model(x), y, reduction="none")).sum())
        return run

    def mwnet():
        model, optimizer = new()
        vnet = MetaWeightNet()

        def run():
            vnet.meta_step(model, x, lambda z: F.cross_entropy(z, y, reduction="none"), x_meta,
                           lambda z: F.cross_entropy(z, y_meta),
                           lookahead=Lookahead.from_optimizer(optimizer))
            losses = F.cross_entropy(model(x), y, reduction="none")
            step(optimizer, (vnet(losses).detach() * losses).mean())
        return run

    def dml(order):
        (student, optimizer), (teacher, teacher_optimizer) = new(), new()
        feedback = MetaFeedback(teacher, teacher_optimizer, 10, order=order)
        return lambda: feedback.step(student, optimizer, x, y)

    def l2t_dln(teacher, teach_every=1):
        model, optimizer = new()
        l2t, window = L2TDLN(teacher=teacher), [(x, y)] * unroll_steps

        def run():
            l2t.teach(model, optimizer, window, (x_meta, y_meta))
            for _ in range(teach_every - 1):
                l2t.train_student(model, optimizer, window)
        run.batches = unroll_steps * teach_every
        return run

    return {
        "ce": plain(lambda z, t: F.cross_entropy(z, t)),
        "gce": plain(generalized_cross_entropy),
        "coteaching": coteaching(),
        "l2rw": l2rw(lambda m, o: l2r_weights_ours(m, x, y, x_meta, y_meta, Lookahead.from_optimizer(o))),
        "l2rw_first_order": l2rw(lambda m, o: l2r_weights_ours(m, x, y, x_meta, y_meta,
                                                               Lookahead.from_optimizer(o), "first_order")),
        "mwnet": mwnet(),
        "dml": dml("first_order"),
        "dml_2nd": dml("second_order"),
        "dln": l2t_dln("adam"),
        "l2t_dln": l2t_dln("lstm"),
        "l2t_dln_every4": l2t_dln("lstm", teach_every=4),
        "l2rw_higher": l2rw(lambda m, o: l2r_weights_higher(m, x, y, x_meta, y_meta, LR)),
        "l2rw_torchopt": l2rw(lambda m, o: l2r_weights_torchopt(m, x, y, x_meta, y_meta, LR)),
    }


def bench(arch: str, batch: int, repeats: int, unroll_steps: int) -> dict:
    runs = iterations(arch, batch, unroll_steps)
    for fn in runs.values():  # warm-up: allocator, first-call overheads
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / getattr(fn, "batches", 1))
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    return {"model": arch, "batch": batch, "repeats": repeats, "unroll_steps": unroll_steps, "ms": ms,
            "ratio_to_ce": {name: v / ms["ce"] for name, v in ms.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cifar_resnet8", "cifar_wrn28_2"])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--unroll-steps", type=int, default=15, help="K of the L2T-DLN rows")
    parser.add_argument("--check-batch", type=int, default=8, help="batch of the float64 weight check")
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, higher {importlib.metadata.version('higher')}, "
          f"torchopt {torchopt.__version__}")
    for arch in args.models:
        diff = check_same_weights(arch, args.check_batch)
        print(f"\n### {arch}, batch {args.batch}: L2RW weights of ours, higher and torchopt agree "
              f"(max |diff| {diff:.1e}, float64, batch {args.check_batch})\n")
        result = bench(arch, args.batch, args.repeats, args.unroll_steps)
        print("| method | ms / iteration | x CE |\n|---|---|---|")
        for name, value in result["ms"].items():
            print(f"| {name} | {value:.0f} | {result['ratio_to_ce'][name]:.2f} |")
        fastest_peer = min(result["ms"]["l2rw_higher"], result["ms"]["l2rw_torchopt"])
        print(f"\nours / fastest peer: l2rw {result['ms']['l2rw'] / fastest_peer:.2f}, "
              f"l2rw_first_order {result['ms']['l2rw_first_order'] / fastest_peer:.2f}, "
              f"mwnet {result['ms']['mwnet'] / fastest_peer:.2f}")
        ms = result["ms"]
        print("dml (issue 14; target: dml <= 3x ce, faster than l2rw and mwnet): "
              + ", ".join(f"{name} {ms[name] / ms[peer]:.2f}x {peer}" for name in ("dml", "dml_2nd")
                          for peer in ("ce", "l2rw", "mwnet")))
        print(f"l2t_dln (issue 15; K = {args.unroll_steps}, per training batch): "
              + ", ".join(f"{name} {ms[name] / ms[peer]:.2f}x {peer}"
                          for name in ("dln", "l2t_dln", "l2t_dln_every4")
                          for peer in ("ce", "l2rw")))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
