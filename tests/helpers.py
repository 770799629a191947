"""Small pieces the training tests share: a quick Lenet spec on the synthetic set, random masks, the
optimizer settings every training path must get right, and the CLI as a real subprocess."""

import os
import subprocess
import sys

import torch

from ticketlab import api
from ticketlab.pruning import Mask

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16",
         "training.steps": "60it", "training.eval_every": "20it", "training.batch_size": 30}

# id -> overrides; both the single loop and the batched engine are tested over these
OPTIMIZERS = {
    "sgd": {"training.optimizer": "sgd", "training.lr": "0.1"},
    "momentum": {"training.optimizer": "sgd", "training.lr": "0.05", "training.momentum": "0.9"},
    "nesterov+wd": {"training.optimizer": "sgd", "training.lr": "0.05", "training.momentum": "0.9",
                    "training.nesterov": "true", "training.weight_decay": "0.01"},
    "sgdw": {"training.optimizer": "sgd", "training.lr": "0.05", "training.momentum": "0.9",
             "training.weight_decay": "0.01", "training.decoupled_weight_decay": "true"},
    "adam": {"training.optimizer": "adam"},
    "adam+wd": {"training.optimizer": "adam", "training.weight_decay": "0.01"},
    "adamw": {"training.optimizer": "adam", "training.weight_decay": "0.01", "training.decoupled_weight_decay": "true"},
}


def quick_spec(**extra):
    return api.make_spec("lenet", overrides={**QUICK, **extra})


def random_mask(model, density=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Mask.from_tensors({n: torch.rand(p.shape, generator=g) < density for n, p in model.prunable_weights().items()})


def run_ticketlab(*argv, wait=True, new_session=False, **env):
    """``python -m ticketlab argv`` with one thread (and ``env`` added): its CompletedProcess, or with
    ``wait=False`` the running Popen (``new_session``: the leader of its own process group)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    command = [sys.executable, "-m", "ticketlab", *argv]
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=new_session)
