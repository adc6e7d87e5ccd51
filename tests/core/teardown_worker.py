"""Worker for test_reweighting: a two-process run that creates its process group *before* its first
look-ahead, as a user's loop does, then ends it. Each rank writes how many gloo worker threads are
still alive after ``end_training`` (they must be none, or the process aborts at exit)."""

import os
import sys

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from metaloss.core import MetaWeightNet


def live_gloo_threads() -> int:
    """The threads of this process that gloo's process group runs (Linux names them)."""
    tasks = os.listdir("/proc/self/task")
    return sum(open(f"/proc/self/task/{t}/comm").read().strip() == "pt_gloo_runloop" for t in tasks)


def main(out_prefix: str) -> None:
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model, vnet = nn.Linear(5, 3), MetaWeightNet(hidden=8, lr=0.05)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    vnet.meta_step(model, x, lambda z: F.cross_entropy(z, y, reduction="none"), x,
                   lambda z: F.cross_entropy(z, y), lookahead=0.5)
    during = live_gloo_threads()
    acc.end_training()
    with open(f"{out_prefix}-rank{acc.process_index}.txt", "w") as f:
        f.write(f"{during} {live_gloo_threads()}")


if __name__ == "__main__":
    main(sys.argv[1])
