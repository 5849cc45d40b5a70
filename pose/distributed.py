"""Processes and devices: who this process is under ``torchrun`` and how ranks exchange results.

Training (:mod:`pose.training`) and evaluation (:mod:`pose.evaluation.runner`) share these so a distributed
validation sees every sample exactly once whatever the world size.
"""
import logging
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from pose.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class Dist:
    """Where this process runs: ``rank`` of ``world_size`` processes on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()


def setup_distributed(device: Optional[str] = None) -> Dist:
    """Initialise the process group when launched by ``torchrun`` and pick this rank's device.

    Args:
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; None = CUDA if available, else CPU. Under
            ``torchrun`` a plain ``'cuda'`` becomes ``cuda:LOCAL_RANK``.
    """
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine; expected 'cpu'")
        if dev.index is None:
            dev = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    dist = Dist(rank=rank, world_size=world, local_rank=local_rank, device=dev)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        dist.initialized_here = True
        logger.info("distributed: rank %d of %d (%s, %s)", rank, world, backend, dev)
    elif world > 1:
        dist.rank, dist.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return dist


def rank_and_world() -> tuple:
    """``(rank, world_size)`` of an initialised process group, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather_by_index(index: np.ndarray, values: np.ndarray, total: int) -> np.ndarray:
    """All-gather per-sample rows from every rank into one (total, ...) array ordered by sample index.

    Args:
        index: (n,) sample indices this rank computed.
        values: (n, ...) their values.
        total: number of samples; every index in ``[0, total)`` must come from some rank.
    """
    gathered: List = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, (index, values))
    out = np.zeros((total,) + values.shape[1:], values.dtype)
    seen = np.zeros(total, bool)
    for idx, val in gathered:
        out[idx] = val
        seen[idx] = True
    if not seen.all():
        raise RuntimeError(f"distributed evaluation lost {int((~seen).sum())} samples")
    return out
