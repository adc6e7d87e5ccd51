"""Time of one AMAL meta step relative to one plain training step (issue: the spine).

Same model, same batch of 128 CIFAR-shaped images, measured side by side in one
process, alternating the three measurements so that machine drift hits all of them:

- train step: forward, CE, backward, SGD step (momentum 0.9, weight decay 5e-4);
- AMAL meta step, last-layer mode: features of the training batch (eval mode) and
  the closed-form hypergradient of (lambda_p, lambda_a) against validation features
  computed once per meta phase (``AMAL.meta_phase``); that once-per-phase cost is
  printed separately, per validation image;
- AMAL meta step, full model, with a validation batch of 128, in each full-model
  mode: "exact" (one-step second order, forward-mode jvp), "first_order" (the
  validation gradient at theta instead of theta': no inner backward pass) and
  "finite_difference" (central differences of the logits instead of the jvp).

Targets (issue 2): last layer <= 0.5x, full <= 3x a training step.
Timings use random inputs: the cost does not depend on pixel values.

    python benchmarks/amal_meta_step.py [--models cifar_resnet8 cifar_resnet56] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import timm
import torch

import metaloss.vision  # noqa: F401  (registers the CIFAR models in timm)
from metaloss.core import AMAL, Lookahead, cross_entropy, kd_loss

FULL_MODES = ("exact", "first_order", "finite_difference")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(name: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    x_val, y_val = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    teacher_logits = torch.randn(batch, 10)
    indices = torch.arange(batch)

    def losses(z):
        return torch.stack([cross_entropy(z, y), kd_loss(z, teacher_logits, 4.0)], dim=1)

    def train_step():
        model.train()
        optimizer.zero_grad()
        cross_entropy(model(x), y).mean().backward()
        optimizer.step()

    last_layer = AMAL(batch, 1, mode="last_layer")
    model.eval()
    with torch.no_grad():
        h_val = model.forward_head(model.forward_features(x_val), pre_logits=True)

    def meta_last_layer():
        model.eval()
        last_layer.meta_step(model, indices, x, losses, lookahead=Lookahead.from_optimizer(optimizer),
                             val_targets=y_val, val_features=h_val)

    def meta_full(mode):
        amal = AMAL(batch, 1, mode=mode)

        def step():
            model.train()
            amal.meta_step(model, indices, x, losses, lookahead=Lookahead.from_optimizer(optimizer),
                           val_inputs=x_val, val_targets=y_val)

        return step

    def val_features():
        model.eval()
        with torch.no_grad():
            model.forward_head(model.forward_features(x_val), pre_logits=True)

    fns = {"train_step": train_step, "meta_last_layer": meta_last_layer,
           **{f"meta_{mode}": meta_full(mode) for mode in FULL_MODES},
           "val_features_once_per_phase": val_features}
    for fn in fns.values():  # warm-up (allocator, momentum buffers)
        fn()
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "seconds": med,
        "ratios": {k: med[f"meta_{k}"] / med["train_step"] for k in ("last_layer", *FULL_MODES)},
        "val_features_per_image_vs_train_step":
            med["val_features_once_per_phase"] / batch / med["train_step"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["cifar_resnet8", "cifar_resnet56"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    rows = [bench(m, args.batch, args.repeats) for m in args.models]
    print("\nAMAL meta step / training step (seconds in brackets); targets: last layer <= 0.5x, "
          "full model <= 3x")
    modes = ("last_layer", *FULL_MODES)
    print("| model | train step (s) | " + " | ".join(f"{m}" for m in modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for r in rows:
        s = r["seconds"]
        cells = " | ".join(f"{r['ratios'][m]:.2f}x ({s[f'meta_{m}']:.3f})" for m in modes)
        print(f"| {r['model']} ({r['params'] / 1e6:.2f}M) | {s['train_step']:.3f} | {cells} |")
    print("\nonce per meta phase, last-layer mode: validation features cost "
          + ", ".join(f"{r['model']} {r['val_features_per_image_vs_train_step']:.4f}" for r in rows)
          + " train steps per validation image")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
