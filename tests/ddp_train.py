"""Training under torchrun, for tests/test_distributed.py (also runs alone, as one process).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_train.py STORE OUT METHOD [KILL_AT]
        trains METHOD on the tiny digits data; rank 0 writes the kNN accuracy, the history and a hash of the
        weights to OUT (JSON). KILL_AT: rank 1 dies after that epoch the first time (a marker beside OUT).
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_train.py - OUT gradients
        one step of every method's objective on a fixed batch with a batch-norm-free network and no
        augmentation; rank 0 writes the loss and the summed gradients to OUT (npz).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from satnb.core.config import TrainSettings
from satnb.core.datasets import load_digits
from satnb.core.store import Store
from satnb.knn.features import build_library, predict
from satnb.nets import losses
from satnb.nets.distributed import join, leave
from satnb.nets.pretrain import _Objective, train

RECIPE = TrainSettings("convnet", epochs=6, batch_size=32, lr=5e-3, encoder_kwargs={"widths": (16, 32, 64)})


def weights_hash(model: torch.nn.Module) -> str:
    """A hash of every tensor of the model's state."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(store: str, out: str, method: str, kill_at: int = 0) -> None:
    torch.set_num_threads(1)
    world, device = join(torch.device("cpu"))
    data = load_digits().subset(400, 120, seed=0)
    marker = Path(out + ".killed")

    ran = []

    def die(done: int, row: dict) -> None:
        ran.append(done)
        if world.rank == 1 and done == kill_at and not marker.exists():
            marker.touch()
            os._exit(1)

    res = train(method, data, RECIPE, Store(Path(store)), seed=0, progress=False, on_epoch_end=die)
    if world.primary:
        knn = build_library(res.model, data.x_train, data.y_train, k=5)
        correct = (predict(res.model, knn, data.x_test).cpu().numpy() == data.y_test)
        Path(out).write_text(json.dumps({
            "world": world.size, "outcomes": correct.astype(int).tolist(), "cached": res.cached, "ran": ran,
            "epochs": [h["epoch"] for h in res.history], "losses": [h["loss"] for h in res.history],
            "weights": weights_hash(res.model)}))
    leave()


class Tiny(nn.Module):
    """A batch-norm-free network with each method's output: logits, a projection or AMDIM's (r1, r5, r7)."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method, self.n_rkhs = method, 16
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10 if method == "sup" else 128)

    def forward(self, x: torch.Tensor):
        h = torch.relu(self.conv(x))
        if self.method == "amdim":
            pool = nn.functional.adaptive_avg_pool2d
            return pool(h, 1).flatten(1), pool(h, 5), pool(h, 7)
        return self.fc(h.mean((2, 3)))


def gradients(out: str) -> None:
    """Each objective's loss and gradient of one global batch of 8, written by rank 0."""
    torch.set_num_threads(1)
    world, _ = join(torch.device("cpu"))
    # AMDIM's 5x5 source is a random location per image, and the ranks draw their augmentations' seeds from the
    # shared stream, which a single process does not: fix the location so that the two can be compared
    losses._sample_locations = lambda r, generator=None: r[:, :, 0, 0]
    saved = {}
    for method in ("sup", "simclr", "npid", "amdim"):
        torch.manual_seed(0)
        model = Tiny(method)
        objective = _Objective(method, model, 16, 12)
        objective.augment = lambda x: x
        x, y, idx = torch.rand(8, 3, 12, 12), torch.randint(0, 10, (8,)), torch.randperm(16)[:8]
        loss = objective(model, x[world.shard(torch.arange(8))], y, idx, world)  # this rank's slice of x
        loss.backward()
        world.sum_gradients(model)
        saved[f"{method}/loss"] = loss.detach().numpy()
        for name, p in model.named_parameters():
            if p.grad is not None:  # AMDIM's output skips fc
                saved[f"{method}/{name}"] = p.grad.numpy()
        if method == "npid":
            saved["npid/bank"] = objective.bank.memory.numpy()
    if world.primary:
        np.savez(out, **saved)
    leave()


if __name__ == "__main__" and sys.argv[3] == "gradients":
    gradients(sys.argv[2])
elif __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
