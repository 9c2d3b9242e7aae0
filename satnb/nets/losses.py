"""Self-supervised losses: AMDIM's multiscale InfoNCE, SimCLR's NT-Xent and NPID's memory bank.

The supervised loss is plain ``torch.nn.functional.cross_entropy``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AMDIMOutput = tuple[Tensor, Tensor, Tensor]


def tanh_clip(x: Tensor, clip: float | None = 20.0) -> Tensor:
    """Soft clip to (-clip, clip): clip * tanh(x / clip); identity when clip is None."""
    return x if clip is None else clip * torch.tanh(x / clip)


def _nce_terms(src: Tensor, trg: Tensor, tclip: float | None) -> tuple[Tensor, Tensor]:
    """Return (InfoNCE loss, mean squared raw score) for predicting the locations of trg from src."""
    if src.dim() == 4:
        src = src.flatten(1)
    if src.dim() != 2 or trg.dim() != 4:
        raise ValueError(f"expected src (B, D) or (B, D, 1, 1) and trg (B, D, H, W); got {tuple(src.shape)}, "
                         f"{tuple(trg.shape)}")
    b, d = src.shape
    if trg.shape[0] != b or trg.shape[1] != d:
        raise ValueError(f"src {tuple(src.shape)} and trg {tuple(trg.shape)} disagree in batch or feature size")
    if b < 2:
        raise ValueError("InfoNCE needs at least 2 images in the batch (the others are the negatives)")
    n_locs = trg.shape[2] * trg.shape[3]
    trg_flat = trg.permute(1, 0, 2, 3).reshape(d, b * n_locs)
    # raw[i, j, l]: score of source image i against location l of target image j
    raw = (src.float() @ trg_flat.float()).view(b, b, n_locs) / math.sqrt(d)
    reg = raw.pow(2).mean()
    scores = tanh_clip(raw, tclip)
    eye = torch.eye(b, dtype=torch.bool, device=src.device)
    pos = scores[eye]  # (B, n_locs): the same image at every location
    # all locations of the other images are negatives, shared by every positive of image i
    neg_lse = scores.masked_fill(eye.unsqueeze(2), float("-inf")).reshape(b, -1).logsumexp(dim=1, keepdim=True)
    log_prob = pos - torch.logaddexp(pos, neg_lse)
    return -log_prob.mean(), reg


def amdim_nce(src_r1: Tensor, trg_rN: Tensor, tclip: float | None = 20.0, reg_weight: float = 0.0) -> Tensor:
    """AMDIM's InfoNCE loss for predicting every location of trg_rN (B, D, H, W) from src_r1 (B, D[, 1, 1]).

    Image i's source vector should score high at all locations of target i and low at all
    locations of the other images. ``reg_weight`` adds AMDIM's penalty on the raw scores
    (reg_weight * mean of the squared unclipped scores; AMDIM uses 5e-2).
    """
    loss, reg = _nce_terms(src_r1, trg_rN, tclip)
    return loss + reg_weight * reg if reg_weight else loss


def _sample_locations(r: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One randomly chosen spatial location per image of a (B, D, H, W) map, as (B, D)."""
    b, d, h, w = r.shape
    idx = torch.randint(0, h * w, (b,), generator=generator, device="cpu").to(r.device)
    return r.flatten(2).gather(2, idx.view(b, 1, 1).expand(b, d, 1)).squeeze(2)


class AMDIMLoss(nn.Module):
    """AMDIM's multiscale InfoNCE between two views: 1->5, 1->7 and 5->5 predictions in both directions.

    forward(out1, out2) takes the (r1, r5, r7) outputs of an AMDIMEncoder on two augmentations
    of the same batch and returns loss_1t5 + loss_1t7 + loss_5t5 + the score regulariser, each
    averaged over the two directions (as in amdim-public).
    """

    def __init__(self, n_rkhs: int | None = None, tclip: float = 20.0, reg_weight: float = 5e-2) -> None:
        super().__init__()
        self.n_rkhs = n_rkhs
        self.tclip = tclip
        self.reg_weight = reg_weight

    def terms(
        self, out1: AMDIMOutput, out2: AMDIMOutput, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The separate loss terms: keys '1t5', '1t7', '5t5' (NCE losses) and 'reg' (weighted regulariser)."""
        r1_a, r5_a, r7_a = out1
        r1_b, r5_b, r7_b = out2
        if self.n_rkhs is not None and r1_a.shape[1] != self.n_rkhs:
            raise ValueError(f"expected {self.n_rkhs}-d embeddings, got {r1_a.shape[1]}")
        # the 5x5 source is one random location per image, as in amdim-public
        r5s_a, r5s_b = _sample_locations(r5_a, generator), _sample_locations(r5_b, generator)
        pairs = {
            "1t5": ((r1_a, r5_b), (r1_b, r5_a)),
            "1t7": ((r1_a, r7_b), (r1_b, r7_a)),
            "5t5": ((r5s_a, r5_b), (r5s_b, r5_a)),
        }
        out: dict[str, Tensor] = {}
        reg_total = r1_a.new_zeros(())
        for name, ((s1, t1), (s2, t2)) in pairs.items():
            l1, g1 = _nce_terms(s1, t1, self.tclip)
            l2, g2 = _nce_terms(s2, t2, self.tclip)
            out[name] = 0.5 * (l1 + l2)
            reg_total = reg_total + 0.5 * (g1 + g2)
        out["reg"] = self.reg_weight * reg_total
        return out

    def forward(self, out1: AMDIMOutput, out2: AMDIMOutput) -> Tensor:
        """Scalar loss for two views' (r1, r5, r7)."""
        return sum(self.terms(out1, out2).values())


class NTXentLoss(nn.Module):
    """SimCLR's normalised-temperature cross entropy over the 2N views of a batch."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Loss for projections z1, z2 (N, D) of two views; row i of z1 and z2 are the positive pair."""
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"z1 and z2 must both be (N, D); got {tuple(z1.shape)} and {tuple(z2.shape)}")
        n = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        sim = (z @ z.t()) / self.temperature
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, targets)


class NPIDMemoryBank(nn.Module):
    """Non-parametric instance discrimination (Wu et al. 2018) with a full softmax over a memory bank.

    The bank holds one L2-normalised vector per training image (a buffer, so it is saved in
    the state_dict). ``loss(features, indices)`` scores the batch against the whole bank,
    takes cross entropy with each image's own index as the class, then moves the bank rows
    of the batch towards the new features with the given momentum and re-normalises them.
    """

    memory: Tensor

    def __init__(
        self, n_samples: int, dim: int = 128, temperature: float = 0.1, momentum: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_samples, self.dim = int(n_samples), int(dim)
        self.temperature, self.momentum = float(temperature), float(momentum)
        stdv = 1.0 / math.sqrt(dim / 3)
        bank = torch.rand(n_samples, dim, generator=generator) * (2 * stdv) - stdv
        self.register_buffer("memory", bank)

    def logits(self, features: Tensor) -> Tensor:
        """(B, n_samples) similarities of L2-normalised features to the bank, divided by the temperature."""
        return F.normalize(features, dim=1) @ self.memory.t() / self.temperature

    @torch.no_grad()
    def update(self, features: Tensor, indices: Tensor) -> None:
        """Momentum update of the bank rows at indices with the (detached) features, then re-normalise."""
        f = F.normalize(features.detach().float(), dim=1)
        rows = self.memory.index_select(0, indices) * self.momentum + f * (1.0 - self.momentum)
        # out-of-place so the bank saved by autograd for this step's backward stays intact
        self.memory = self.memory.index_copy(0, indices, F.normalize(rows, dim=1))

    def loss(self, features: Tensor, indices: Tensor, update: bool = True) -> Tensor:
        """Instance-discrimination cross entropy for features (B, dim) of the images at indices (B,)."""
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must be (B, {self.dim}), got {tuple(features.shape)}")
        indices = indices.to(self.memory.device).long()
        out = F.cross_entropy(self.logits(features), indices)
        if update:
            self.update(features, indices)
        return out

    def forward(self, features: Tensor, indices: Tensor) -> Tensor:
        """Same as loss(features, indices)."""
        return self.loss(features, indices)
