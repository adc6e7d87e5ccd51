"""Worker for test_reweighting: MetaWeightNet meta steps on different batches in each process.

Each rank looks ahead on its own training batch; after the steps every rank must hold the same V.
The process group exists before the first look-ahead, as in a user's loop, so each rank also counts
gloo's worker threads before and after ``end_training`` (after, there must be none, or the process
aborts at exit; -1 where Linux's /proc is absent).
"""

import os
import sys

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from metaloss.core import MetaWeightNet


def live_gloo_threads() -> int:
    """The threads of this process that gloo's process group runs (Linux names them), or -1."""
    if not os.path.isdir("/proc/self/task"):
        return -1
    tasks = os.listdir("/proc/self/task")
    return sum(open(f"/proc/self/task/{t}/comm").read().strip() == "pt_gloo_runloop" for t in tasks)


def main(out_prefix: str) -> None:
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)  # the same model and V on every rank
    model, vnet = nn.Linear(5, 3), MetaWeightNet(hidden=8, lr=0.05)
    g = torch.Generator().manual_seed(100 + acc.process_index)  # each rank its own batches
    for _ in range(3):
        x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
        xv, yv = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
        vnet.meta_step(model, x, lambda z, y=y: F.cross_entropy(z, y, reduction="none"), xv,
                       lambda z, yv=yv: F.cross_entropy(z, yv), lookahead=0.5)
    during = live_gloo_threads()
    acc.end_training()
    torch.save({"v": vnet.net.state_dict(), "gloo_threads": (during, live_gloo_threads())},
               f"{out_prefix}-rank{acc.process_index}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
