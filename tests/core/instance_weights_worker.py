"""Worker for test_instance_weights: run under `accelerate launch` (or alone).

Every rank draws the same stream of (indices, gradients) batches and keeps the
ones whose position is congruent to its rank, as a distributed sampler would.
After each round, ``step`` synchronises; the final table is saved per rank.
"""

import sys

import torch
from accelerate import Accelerator

from metaloss.core import InstanceWeights

N, K, ROUNDS, BATCHES, B = 50, 3, 3, 8, 7


def main(out_prefix: str) -> None:
    acc = Accelerator(cpu=True)
    weights = InstanceWeights(N, K, init=[0.5, 0.3, 0.2], lr=0.7, lower=0.0, upper=1.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(ROUNDS):
        for b in range(BATCHES):
            idx = torch.randperm(N, generator=g)[:B]
            grads = torch.randn(B, K, generator=g)
            if b % acc.num_processes == acc.process_index:
                weights.accumulate(idx, grads)
        weights.step()
    torch.save(weights.state_dict(), f"{out_prefix}-rank{acc.process_index}.pt")
    acc.end_training()  # a live gloo group at exit can abort the process


if __name__ == "__main__":
    main(sys.argv[1])
