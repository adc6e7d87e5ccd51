"""What K unrolled student steps cost: core's ``unrolled_hypergradient`` for K in (1, 3, 5, 10, 15).

L2T-DLN (NeurIPS 2023) trains its loss network by the validation loss's gradient taken through K
SGD steps of the student. This measures, relative to K = 1, the time of one such hypergradient and
the memory its graph holds, on a CIFAR-shaped problem: ResNet-8 in training mode (BatchNorm), K
batches of 25 random images (the cost does not depend on pixel values), 100 validation images, a
core's ``DynamicLossNetwork`` (L2T-DLN's loss network, 5000 parameters) as the meta params, and
the look-ahead imitating a real SGD (momentum 0.9 with the buffers of one real step, weight decay).

- Time: the median over ``--repeats`` calls, every K (and peer) measured side by side in one
  process, in alternating rounds so that machine drift hits them alike, after one warm-up call each.
- Memory: the bytes of the distinct storages autograd saves for backward during one call (the K
  steps' forward graphs, the graphs their create_graph gradients build, the outer pass), counted in
  a separate untimed call with ``torch.autograd.graph.saved_tensors_hooks``; a storage saved many
  times counts once. This is the size of what the graph keeps alive, not the process's peak RSS,
  which adds the allocator's caching and short-lived buffers and is noisy on a shared machine.

If ``higher`` is importable (a benchmark-only dependency, ``requirements-bench.txt``), the same
K-step computation written with ``higher.innerloop_ctx`` (a copy of the same SGD, momentum buffers
included) is a peer row, run on its own copy of the model; its hypergradient is compared with ours
(max |difference|), and the output says whether either left the model's BatchNorm statistics moved.

    python benchmarks/unrolled_lookahead_cost.py [--ks 1 3 5 10 15] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import metaloss.vision  # noqa: F401  (registers the CIFAR models in timm)
from metaloss.core import DynamicLossNetwork, Lookahead, unrolled_hypergradient

try:
    import higher
except ImportError:  # the peer row is optional
    higher = None

CLASSES, LR = 10, 0.05


def make_problem(arch: str, k_max: int, batch: int, val: int, seed: int) -> dict:
    """Model, a real SGD that has stepped once, k_max training batches, the validation batch, the loss net."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, num_classes=CLASSES).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    for p in model.parameters():  # one real step, so the look-ahead starts from momentum buffers
        p.grad = 0.01 * torch.randn_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    batches = [(torch.randn(batch, 3, 32, 32), torch.randint(0, CLASSES, (batch,))) for _ in range(k_max)]
    loss_net = DynamicLossNetwork(init="kaiming", seed=seed)  # the start does not change the cost
    x_val, y_val = torch.randn(val, 3, 32, 32), torch.randint(0, CLASSES, (val,))
    return {"model": model, "optimizer": optimizer, "batches": batches, "loss_net": loss_net,
            "x_val": x_val, "y_val": y_val}


def dln_loss(loss_net: nn.Module, phi, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The DLN's loss at parameters ``phi``, averaged over the batch."""
    names = [n for n, _ in loss_net.named_parameters()]
    return functional_call(loss_net, dict(zip(names, phi)), (logits, y)).mean()


def ours(problem: dict, k: int):
    """core's unrolled_hypergradient through the first k batches."""
    loss_net, y_val = problem["loss_net"], problem["y_val"]
    steps = [(x, lambda z, phi, y=y: dln_loss(loss_net, phi, z, y)) for x, y in problem["batches"][:k]]
    return unrolled_hypergradient(problem["model"], steps, problem["x_val"],
                                  lambda z: F.cross_entropy(z, y_val), tuple(loss_net.parameters()),
                                  lookahead=Lookahead.from_optimizer(problem["optimizer"]))


def peer_problem(problem: dict) -> dict:
    """The same problem on copies of the model and the optimiser, for a peer that may change them."""
    model = copy.deepcopy(problem["model"])
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    optimizer.load_state_dict(copy.deepcopy(problem["optimizer"].state_dict()))
    return {**problem, "model": model, "optimizer": optimizer}


def with_higher(problem: dict, k: int):
    """The same k-step hypergradient with higher's differentiable SGD (it copies the optimiser's state)."""
    loss_net, phi = problem["loss_net"], tuple(problem["loss_net"].parameters())
    with higher.innerloop_ctx(problem["model"], problem["optimizer"], copy_initial_weights=True,
                              track_higher_grads=True) as (fmodel, diffopt):
        for x, y in problem["batches"][:k]:
            diffopt.step(dln_loss(loss_net, phi, fmodel(x), y))
        return torch.autograd.grad(F.cross_entropy(fmodel(problem["x_val"]), problem["y_val"]), phi)


def saved_bytes(call) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``call()`` runs."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage  # held, so a freed address is not reused and miscounted
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        call()
    return sum(storage.nbytes() for storage in storages.values())


def running_stats(model: nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for n, b in model.named_buffers() if "running_" in n]


def moved(model: nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, running_stats(model)))


def max_difference(a, b) -> tuple[float, float]:
    """(max |a - b|, max |a|) over the tensors of two hypergradients."""
    diff = max(float((x - y).abs().max()) for x, y in zip(a, b))
    return diff, max(float(x.abs().max()) for x in a)


def bench(problem: dict, ks: list[int], repeats: int) -> dict:
    """ms per call and saved bytes for every (implementation, K), and the peer checks."""
    runs = {("ours", k): (lambda k=k: ours(problem, k)) for k in ks}
    checks = {}
    if higher is not None:
        peer = peer_problem(problem)
        runs.update({("higher", k): (lambda k=k: with_higher(peer, k)) for k in ks})
        ours_stats, peer_stats = running_stats(problem["model"]), running_stats(peer["model"])
        checks = {f"K={k}": max_difference(ours(problem, k), with_higher(peer, k)) for k in ks}
        checks["ours moved BatchNorm statistics"] = moved(problem["model"], ours_stats)
        checks["higher moved BatchNorm statistics"] = moved(peer["model"], peer_stats)
    memory = {key: saved_bytes(fn) for key, fn in runs.items()}
    for fn in runs.values():  # warm-up: allocator, first-call overheads
        fn()
    times: dict = {key: [] for key in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {"ms": {key: 1000 * statistics.median(t) for key, t in times.items()}, "bytes": memory,
            "checks": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cifar_resnet8")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10, 15])
    parser.add_argument("--batch", type=int, default=25, help="training examples per unrolled step")
    parser.add_argument("--val", type=int, default=100, help="validation examples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ks = sorted(set(args.ks) | {1})  # K = 1 is the reference of every ratio
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, higher {'present' if higher else 'absent'}, seed {args.seed}, "
          f"{args.arch}, batch {args.batch} per step, {args.val} validation, repeats {args.repeats}\n")
    problem = make_problem(args.arch, max(ks), args.batch, args.val, args.seed)
    result = bench(problem, ks, args.repeats)
    ms, memory = result["ms"], result["bytes"]
    print("| implementation | K | ms / hypergradient | x K=1 | MB saved for backward | x K=1 |\n"
          "|---|---|---|---|---|---|")
    for name, k in ms:
        print(f"| {name} | {k} | {ms[name, k]:.0f} | {ms[name, k] / ms[name, 1]:.2f} | "
              f"{memory[name, k] / 2**20:.1f} | {memory[name, k] / memory[name, 1]:.2f} |")
    for check, value in result["checks"].items():
        if isinstance(value, bool):
            print(f"{check}: {'yes' if value else 'no'}")
        else:
            print(f"{check}: ours vs higher max |diff| {value[0]:.2e} (max |hypergradient| {value[1]:.2e})")
    print(json.dumps({"ms": {f"{n}_K{k}": v for (n, k), v in ms.items()},
                      "bytes": {f"{n}_K{k}": v for (n, k), v in memory.items()},
                      "checks": result["checks"]}))


if __name__ == "__main__":
    main()
