"""The training loop keeps channels_last end to end: augmentations keep their input's memory format, and the
batches the loop makes reach the model in channels_last (an NCHW batch would be converted on every step)."""

import dataclasses

import pytest
import torch

from satnb.core.config import PROFILES
from satnb.core.dataset import Dataset
from satnb.nets import pretrain
from satnb.nets.augment import BatchAugment, amdim_augment, npid_augment, simclr_augment, supervised_augment

AUGMENTS = {"amdim": amdim_augment, "simclr": simclr_augment, "npid": npid_augment, "sup": supervised_augment}


def _batch(fmt: torch.memory_format, size: int = 32) -> torch.Tensor:
    x = torch.rand(6, 3, size, size, generator=torch.Generator().manual_seed(0))
    return x.contiguous(memory_format=fmt)


@pytest.mark.parametrize("name", sorted(AUGMENTS))
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_every_augmentation_keeps_the_memory_format(name, fmt):
    out = AUGMENTS[name](32, generator=torch.Generator().manual_seed(1))(_batch(fmt))
    assert out.is_contiguous(memory_format=fmt), f"{name} returned another memory format"
    # the same images, whatever the format: the format changes the layout, never the values
    again = AUGMENTS[name](32, generator=torch.Generator().manual_seed(1))(_batch(torch.contiguous_format))
    torch.testing.assert_close(out, again)


@pytest.mark.parametrize("crop", ["resized", "translate", "pad", "none"])
def test_every_crop_mode_keeps_channels_last(crop):
    aug = BatchAugment(32, crop=crop, jitter=(0.4, 0.4, 0.4, 0.1), gray_p=0.5,
                       generator=torch.Generator().manual_seed(2))
    assert aug(_batch(torch.channels_last)).is_contiguous(memory_format=torch.channels_last)


def test_batch_images_are_channels_last():
    x = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    out = pretrain.batch_images(x, torch.arange(5))
    assert out.is_contiguous(memory_format=torch.channels_last) and out.dtype == torch.float32
    torch.testing.assert_close(out, x.permute(0, 3, 1, 2).float() / 255)


@pytest.mark.parametrize("method", ["amdim", "npid", "simclr", "sup"])
def test_the_training_loop_feeds_the_model_channels_last(method, tmp_path, monkeypatch):
    monkeypatch.setenv("SATNB_CACHE", str(tmp_path))
    settings = PROFILES["smoke"].train[method]
    settings = dataclasses.replace(settings, epochs=1, batch_size=8, warmup_epochs=0)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8, generator=g).numpy()
    y = (torch.arange(16) % 10).numpy()
    data = Dataset("cifar10", x, y, x[:10], y[:10], tuple(str(c) for c in range(10)), "random")
    seen: list[bool] = []
    real = pretrain.build_model

    def spied(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda _m, inp: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
        return model

    monkeypatch.setattr(pretrain, "build_model", spied)
    from satnb.core.store import Store

    pretrain.train(method, data, settings, store=Store(tmp_path), progress=False)
    assert seen and all(seen), f"{method}: {seen.count(False)} of {len(seen)} batches reached the model in NCHW"
