# Copyright (c) monai-msgan contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

from __future__ import annotations

import pytest
import torch

from monai_msgan.networks import DiscriminatorAugment


def test_probability_zero_is_the_identity():
    aug = DiscriminatorAugment(2, p=0.0, target=None)
    x = torch.randn(3, 2, 16, 16)
    assert aug(x) is x


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_translation_is_an_exact_integer_shift_filled_with_background(spatial_dims):
    torch.manual_seed(1)
    aug = DiscriminatorAugment(spatial_dims, policy="translation", p=1.0, target=None, translation=0.25, fill=-1.0)
    size = (16,) * spatial_dims
    x = torch.rand(4, 1, *size)
    y = aug(x)
    for i in range(4):
        matched = False
        for shift in torch.cartesian_prod(*[torch.arange(-4, 5)] * spatial_dims).reshape(-1, spatial_dims):
            expected = torch.full_like(x[i], -1.0)
            src = [slice(max(0, int(s)), n + min(0, int(s))) for s, n in zip(shift, size)]
            dst = [slice(max(0, -int(s)), n - max(0, int(s))) for s, n in zip(shift, size)]
            expected[(slice(None), *dst)] = x[i][(slice(None), *src)]
            if torch.allclose(y[i], expected, atol=1e-5):
                matched = True
                break
        assert matched, f"sample {i} is not an integer shift of its input"


def test_cutout_and_intensity_keep_condition_channels():
    torch.manual_seed(2)
    x = torch.rand(4, 3, 32, 32)
    cut = DiscriminatorAugment(2, policy=["cutout"], p=1.0, target=None, cutout=0.5, fill=-1.0)(x)
    filled = (cut == -1.0).all(dim=1)  # a box set to the fill value in every channel
    assert filled.flatten(1).sum(1).min() >= 8 * 8  # at least a quarter of the box, at a corner
    inten = DiscriminatorAugment(2, policy=["intensity"], p=1.0, target=None, intensity_channels=2)(x)
    assert not torch.allclose(inten[:, :2], x[:, :2])
    assert torch.equal(inten[:, 2:], x[:, 2:])  # the condition channel is left alone


def test_gradients_flow_through_every_augmentation():
    x = torch.rand(2, 1, 16, 16, 16, requires_grad=True)
    DiscriminatorAugment(3, p=1.0, target=None)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_adaptive_probability_follows_overfitting_and_survives_a_checkpoint():
    aug = DiscriminatorAugment(2, p=0.0, target=0.6, interval=2, speed=10)
    for _ in range(8):  # D is sure every real is real: r_t = 1 > 0.6
        aug.update(torch.ones(4, 1, 3, 3))
    assert aug.probability == pytest.approx(0.8)  # 4 adjustments of +0.2, capped at max_p 0.8
    for _ in range(4):  # D calls every real fake: r_t = -1
        aug.update(torch.zeros(4, 1, 3, 3))
    assert aug.probability == pytest.approx(0.4)
    restored = DiscriminatorAugment(2, p=0.0, target=0.6, interval=2, speed=10)
    restored.load_state_dict(aug.state_dict())
    assert restored.probability == pytest.approx(0.4)
    fixed = DiscriminatorAugment(2, p=0.3, target=None)
    fixed.update(torch.ones(4, 1, 3, 3))
    assert fixed.probability == pytest.approx(0.3)


def test_unknown_augmentation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown augmentation"):
        DiscriminatorAugment(2, policy="translation,rotation")


@pytest.mark.parametrize(("brightness", "contrast"), [(0.25, 0.5), (0.025, 0.05), (0.0, 0.0)])
def test_intensity_strength_bounds_the_brightness_and_contrast_changes(brightness, contrast):
    torch.manual_seed(3)
    x = torch.rand(64, 1, 8, 8) * 2.0 - 1.0
    aug = DiscriminatorAugment(2, policy="intensity", p=1.0, target=None, brightness=brightness, contrast=contrast)
    y = aug(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    # y = (x - mean) * c + mean + b per sample: c is the slope of y against x, b the shift of the mean
    dx, dy = (x - mean).flatten(1), (y - y.mean(dim=(1, 2, 3), keepdim=True)).flatten(1)
    c = (dx * dy).sum(1) / (dx * dx).sum(1)
    b = y.mean(dim=(1, 2, 3)) - mean.flatten()
    assert (c - 1.0).abs().max() <= contrast + 1e-4
    assert b.abs().max() <= brightness + 1e-5
    if brightness > 0:  # the range is used, not a fraction of it
        assert b.abs().max() > 0.8 * brightness and (c - 1.0).abs().max() > 0.8 * contrast
    else:
        assert torch.allclose(y, x)


def test_default_intensity_draws_the_values_of_earlier_releases():
    # brightness U(-0.25, 0.25) and contrast U(0.5, 1.5) from the same random numbers, so models and benchmark rows
    # trained before the strength became an option train the same way
    x = torch.randn(4, 2, 8, 8)
    torch.manual_seed(0)
    y = DiscriminatorAugment(2, policy="intensity", p=1.0, target=None)(x)
    torch.manual_seed(0)
    torch.rand(4)  # the per-sample choice
    b = (torch.rand(4, 1, 1, 1) - 0.5) * 0.5
    c = torch.rand(4, 1, 1, 1) + 0.5
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.equal(y, (x - mean) * c + mean + b)


@pytest.mark.parametrize(("brightness", "contrast"), [(-0.1, 0.5), (0.25, 1.0), (0.25, -0.1), (float("nan"), 0.5)])
def test_invalid_intensity_strength_is_a_clear_error(brightness, contrast):
    with pytest.raises(ValueError, match="brightness must be >= 0 and contrast in"):
        DiscriminatorAugment(2, brightness=brightness, contrast=contrast)
