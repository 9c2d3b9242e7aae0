"""Data-parallel training under torchrun: which rank this is, the batch shard it trains, and the collectives.

The training loops stay one loop: every rank draws the same permutation, trains its contiguous
slice of each global batch, gathers the model outputs of the whole batch (gradients flow back
to its own slice only) and computes the same global loss, so the loss, the learning-rate
schedule and NPID's memory bank are the single-process ones on every rank. Gradients are then
summed over ranks. Alone (no process group) every helper is the identity and draws no random
numbers, so a single-process run is unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from satnb.core.config import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks training one model (rank 0 of 1 when alone)."""

    rank: int = 0
    size: int = 1

    @property
    def alone(self) -> bool:
        """True when no other rank trains this model."""
        return self.size == 1

    @property
    def primary(self) -> bool:
        """True on the rank that writes checkpoints and results."""
        return self.rank == 0

    def shard(self, idx: Tensor) -> Tensor:
        """This rank's contiguous slice of a global batch's indices (the whole batch when alone)."""
        if self.alone:
            return idx
        if len(idx) % self.size:
            raise ConfigError(f"the batch of {len(idx)} images does not split evenly over {self.size} ranks; use a "
                              f"batch size that is a multiple of the number of processes (--nproc_per_node)")
        step = len(idx) // self.size
        return idx[self.rank * step:(self.rank + 1) * step]

    def gather(self, out: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        """The global batch's outputs from every rank's slice, in batch order; gradients reach this rank's slice."""
        if self.alone:
            return out
        if isinstance(out, tuple):
            return tuple(_Gather.apply(t, self.rank, self.size) for t in out)
        return _Gather.apply(out, self.rank, self.size)

    def local_random(self) -> contextlib.AbstractContextManager:
        """A context whose random draws differ by rank (augmentations), leaving the shared stream in step."""
        if self.alone:
            return contextlib.nullcontext()
        return _rank_stream(self.rank)

    def sum_gradients(self, model: nn.Module) -> None:
        """Sum every parameter's gradient over the ranks (each holds its slice's share of the global loss)."""
        if self.alone:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def synchronise_batch_norm(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Batch norm over the global batch on GPUs (torch's SyncBatchNorm); per rank on the CPU, where it has none."""
        if self.alone or device.type != "cuda":
            return model
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class _Gather(torch.autograd.Function):
    """all_gather along the batch whose backward keeps this rank's slice of the (identical) global gradient."""

    @staticmethod
    def forward(ctx, t: Tensor, rank: int, size: int) -> Tensor:  # noqa: D102
        ctx.rank, ctx.n = rank, t.shape[0]
        parts = [torch.empty_like(t) for _ in range(size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n], None, None


@contextlib.contextmanager
def _rank_stream(rank: int) -> Iterator[None]:
    seed = int(torch.randint(0, 2**62, (1,)).item())  # drawn from the shared stream: the same on every rank
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        torch.manual_seed(seed + rank)
        yield


ALONE = World()


def current() -> World:
    """The world of the process group this process belongs to (alone when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return ALONE
    return World(dist.get_rank(), dist.get_world_size())


def launched() -> bool:
    """True when torchrun (or another launcher) started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU); return the world and this rank's device."""
    if not launched():
        return ALONE, device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torchrun started local rank {local} but this machine has {torch.cuda.device_count()} "
                              "GPU(s); set --nproc_per_node to at most the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return current(), device


def leave() -> None:
    """Leave the process group (after a barrier, so no rank exits while another still needs it)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
