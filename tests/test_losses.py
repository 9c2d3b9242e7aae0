"""Self-supervised losses (AMDIM NCE, NT-Xent, NPID memory bank) and the batch augmentations that feed them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.augment import (
    BatchAugment,
    _adjust_hue,
    amdim_augment,
    color_jitter,
    npid_augment,
    random_resized_crop,
    random_shift,
    simclr_augment,
    supervised_augment,
)
from satnb.nets.convnets import SmallConvNet
from satnb.nets.losses import AMDIMLoss, NPIDMemoryBank, NTXentLoss, amdim_nce, tanh_clip
from satnb.nets.models import ProjectionModel


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Distinct, structured images in [0, 1]: random 4x4 colour fields upsampled, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def naive_nce(src: torch.Tensor, trg: torch.Tensor, tclip: float) -> torch.Tensor:
    """Loop version of AMDIM's NCE: one softmax per (image, location) over the positive and all negatives."""
    b, d = src.shape
    trg = trg.flatten(2)  # (B, D, L)
    losses = []
    for i in range(b):
        scores = tanh_clip(torch.einsum("d,jdl->jl", src[i], trg) / math.sqrt(d), tclip)
        negs = torch.cat([scores[j] for j in range(b) if j != i])
        for loc in range(trg.shape[2]):
            logits = torch.cat([scores[i, loc : loc + 1], negs])
            losses.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------- AMDIM


def test_tanh_clip_bounds():
    x = torch.linspace(-1000, 1000, 101)
    y = tanh_clip(x, 20.0)
    assert y.abs().max() <= 20.0
    torch.testing.assert_close(tanh_clip(torch.tensor([0.1]), 20.0), torch.tensor([0.1]), atol=1e-5, rtol=1e-4)
    assert torch.equal(tanh_clip(x, None), x)


def test_amdim_nce_matches_loop_reference():
    src = torch.randn(5, 8) * 3
    trg = torch.randn(5, 8, 3, 3) * 3
    torch.testing.assert_close(amdim_nce(src, trg, tclip=20.0), naive_nce(src, trg, 20.0), rtol=1e-5, atol=1e-5)
    # (B, D, 1, 1) sources are accepted too; the regulariser adds reg_weight * mean squared raw score
    raw = torch.einsum("id,jdl->ijl", src, trg.flatten(2)) / math.sqrt(8)
    torch.testing.assert_close(
        amdim_nce(src[:, :, None, None], trg, reg_weight=0.05), naive_nce(src, trg, 20.0) + 0.05 * raw.pow(2).mean(),
        rtol=1e-5, atol=1e-5,
    )


def test_amdim_nce_lower_for_matching_images():
    src = torch.randn(16, 64)
    trg = src[:, :, None, None].expand(16, 64, 5, 5) + 0.3 * torch.randn(16, 64, 5, 5)
    chance = math.log(1 + 15 * 25)  # log(1 + (B-1) * L): the loss of uninformative scores
    matched = amdim_nce(src, trg)
    shuffled = amdim_nce(src, trg[torch.roll(torch.arange(16), 1)])
    assert matched < 0.5 < chance < shuffled
    assert abs(amdim_nce(torch.zeros(16, 64), trg).item() - chance) < 1e-4


def test_amdim_nce_input_checks():
    with pytest.raises(ValueError):
        amdim_nce(torch.randn(1, 4), torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError):
        amdim_nce(torch.randn(3, 4), torch.randn(3, 5, 5, 5))


def test_amdim_loss_terms_and_sum():
    enc = AMDIMEncoder(ndf=8, n_rkhs=16, n_depth=1)
    x = smooth_images(6)
    aug = amdim_augment(32)
    loss_fn = AMDIMLoss(n_rkhs=16)
    out1, out2 = enc(aug(x)), enc(aug(x))
    terms = loss_fn.terms(out1, out2)
    assert set(terms) == {"1t5", "1t7", "5t5", "reg"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    assert terms["reg"] >= 0
    g = torch.Generator()
    g.manual_seed(1)
    t1 = loss_fn.terms(out1, out2, generator=g)
    g.manual_seed(1)
    t2 = loss_fn.terms(out1, out2, generator=g)
    torch.testing.assert_close(sum(t1.values()), sum(t2.values()))
    with pytest.raises(ValueError):
        AMDIMLoss(n_rkhs=32).terms(out1, out2)


def test_amdim_training_lowers_loss_and_separates_matched_from_shuffled():
    torch.manual_seed(0)
    enc = AMDIMEncoder(ndf=8, n_rkhs=32, n_depth=1)
    loss_fn = AMDIMLoss(n_rkhs=32)
    x = smooth_images(16)
    aug = amdim_augment(32)
    g = torch.Generator().manual_seed(0)
    v1, v2 = aug(x, g), aug(x, g)
    opt = torch.optim.Adam(enc.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss = loss_fn(enc(v1), enc(v2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses
    # fresh augmentations: views of the same image now score better than views of other images
    with torch.no_grad():
        out1, out2 = enc(aug(x, g)), enc(aug(x, g))
        perm = torch.roll(torch.arange(16), 1)
        matched = loss_fn(out1, out2)
        shuffled = loss_fn(out1, tuple(r[perm] for r in out2))
    assert matched < shuffled - 0.5, (matched, shuffled)


# --------------------------------------------------------------------------- NT-Xent


def naive_ntxent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = torch.stack([z[i] @ z[k] / t for k in range(2 * n) if k != i])
        pos = z[i] @ z[j] / t
        total = total - (pos - torch.logsumexp(sims, 0))
    return total / (2 * n)


def test_ntxent_matches_loop_reference_and_prefers_matching_views():
    z1 = torch.randn(8, 16)
    z2 = z1 + 0.1 * torch.randn(8, 16)
    loss = NTXentLoss(temperature=0.5)
    torch.testing.assert_close(loss(z1, z2), naive_ntxent(z1, z2, 0.5), rtol=1e-5, atol=1e-5)
    assert loss(z1, z2) < loss(z1, z2[torch.roll(torch.arange(8), 1)]) - 1.0
    with pytest.raises(ValueError):
        NTXentLoss(0.0)
    with pytest.raises(ValueError):
        loss(z1, z2[:4])


def test_ntxent_training_lowers_loss():
    torch.manual_seed(0)
    enc = SmallConvNet(widths=(8, 16, 16, 32))
    model = ProjectionModel(enc, nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16)))
    x = smooth_images(32)
    aug = simclr_augment(32)
    g = torch.Generator().manual_seed(0)
    v1, v2 = aug(x, g), aug(x, g)
    loss_fn = NTXentLoss(0.5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = loss_fn(model(v1), model(v2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3, losses


# --------------------------------------------------------------------------- NPID


def test_npid_bank_update_and_loss():
    bank = NPIDMemoryBank(n_samples=40, dim=8, temperature=0.1, momentum=0.5)
    assert "memory" in bank.state_dict() and bank.memory.shape == (40, 8)
    f = F.normalize(torch.randn(10, 8), dim=1)
    idx = torch.arange(10, 20)
    old = bank.memory.clone()
    bank.update(f, idx)
    expected = F.normalize(0.5 * old[idx] + 0.5 * f, dim=1)
    torch.testing.assert_close(bank.memory[idx], expected)
    torch.testing.assert_close(bank.memory[:10], old[:10])
    torch.testing.assert_close(bank.memory[idx].norm(dim=1), torch.ones(10))
    # the loss is the full-softmax cross entropy over the bank
    logits = f @ bank.memory.t() / 0.1
    torch.testing.assert_close(bank.loss(f, idx, update=False), F.cross_entropy(logits, idx))
    with pytest.raises(ValueError):
        bank.loss(torch.randn(10, 4), idx)


def test_npid_lower_for_matching_indices():
    bank = NPIDMemoryBank(n_samples=64, dim=16, momentum=0.0)
    f = torch.randn(32, 16)
    idx = torch.randperm(64)[:32]
    bank.update(f, idx)  # momentum 0: the bank rows become the normalised features
    matched = bank.loss(f, idx, update=False)
    shuffled = bank.loss(f, idx[torch.roll(torch.arange(32), 1)], update=False)
    assert matched < shuffled - 2.0


def test_npid_training_lowers_loss_and_checkpoints_bank():
    torch.manual_seed(0)
    enc = SmallConvNet(widths=(8, 16, 16, 32))
    model = ProjectionModel(enc, nn.Linear(32, 16), feature_source="head", normalize_head=True)
    bank = NPIDMemoryBank(n_samples=32, dim=16, temperature=0.1, momentum=0.5)
    x = smooth_images(32)
    idx = torch.arange(32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = bank.loss(model(x), idx)  # the bank is updated in-place-safely after the loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0, losses
    fresh = NPIDMemoryBank(n_samples=32, dim=16)
    fresh.load_state_dict(bank.state_dict())
    torch.testing.assert_close(fresh.memory, bank.memory)


# --------------------------------------------------------------------------- augmentations

PIPELINES = {
    "simclr32": (lambda: simclr_augment(32), 32),
    "amdim32": (lambda: amdim_augment(32), 32),
    "amdim64": (lambda: amdim_augment(64), 64),
    "npid32": (lambda: npid_augment(32), 32),
    "supervised32": (lambda: supervised_augment(32), 32),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_augment_shape_range_per_sample_and_seeding(name):
    make, size = PIPELINES[name]
    aug = make()
    x = smooth_images(1, size).expand(16, 3, size, size).contiguous()  # 16 copies of one image
    out = aug(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    # each copy gets its own random transform
    flat = out.flatten(1)
    distinct = {tuple(torch.round(r * 1e4).tolist()) for r in flat}
    assert len(distinct) >= 12
    assert not torch.allclose(out, x)
    # seeded: same seed, same batch; another seed, another batch
    again = aug(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    assert not torch.allclose(out, aug(x, torch.Generator().manual_seed(4)))


def test_augment_generator_at_construction_and_output_size():
    x = smooth_images(4, 64)
    a = simclr_augment(32, generator=torch.Generator().manual_seed(0))
    b = simclr_augment(32, generator=torch.Generator().manual_seed(0))
    out = a(x)
    assert out.shape == (4, 3, 32, 32)  # a resized crop resamples to image_size
    torch.testing.assert_close(out, b(x))
    with pytest.raises(ValueError):
        BatchAugment(32, crop="zoom")
    with pytest.raises(ValueError):
        a(x[0])
    with pytest.raises(ValueError, match="float"):
        a((x * 255).to(torch.uint8))


def test_hue_matches_torchvision():
    x = smooth_images(4)
    for shift in (-0.5, -0.2, 0.1, 0.45):
        torch.testing.assert_close(_adjust_hue(x, torch.full((4,), shift)), TF.adjust_hue(x, shift),
                                   atol=1e-5, rtol=1e-5)


def test_crop_and_shift_primitives():
    x = smooth_images(4)
    # a full-area square crop without flip is the identity; with flip it is the mirror image
    same = random_resized_crop(x, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    flipped = random_resized_crop(x, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=torch.ones(4, dtype=torch.bool))
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)
    # integer shifts keep pixel values (zero fill adds zeros only)
    shifted = random_shift(x, 4, mode="constant", generator=torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    for i in range(4):
        vals = shifted[i][shifted[i] > 0]
        assert torch.isin(vals, x[i]).all()
    torch.testing.assert_close(random_shift(x, 4, p=0.0), x)


def test_color_jitter_on_grayscale_inputs_and_identity():
    x = smooth_images(4)
    torch.testing.assert_close(color_jitter(x, 0, 0, 0, 0), x)
    gray = x[:, :1]
    out = color_jitter(gray, 0.4, 0.4, 0.4, 0.1)  # saturation and hue are skipped for one channel
    assert out.shape == gray.shape and out.min() >= 0 and out.max() <= 1
