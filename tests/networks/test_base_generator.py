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
from monai.utils import set_determinism

from monai_msgan.networks import BaseGenerator

# (constructor kwargs, input spatial size, batch)
SMALL = (4, 4, 8, 8, 16, 4)
TEST_CASE_2D = [{"spatial_dims": 2, "features": (8, 8, 16, 16, 32, 8)}, (32, 48), 2]
TEST_CASE_3D = [{"spatial_dims": 3, "features": SMALL}, (16, 16, 32), 1]
TEST_CASE_COND = [{"spatial_dims": 2, "features": SMALL, "condition_channels": 2}, (32, 16), 3]
TEST_CASE_SMOOTH = [
    {"spatial_dims": 3, "features": SMALL, "noise_downsample": 4, "upsample": "deconv"},
    (16, 32, 16),
    1,
]
TEST_CASES = [TEST_CASE_2D, TEST_CASE_3D, TEST_CASE_COND, TEST_CASE_SMOOTH]


@pytest.mark.parametrize("kwargs,size,batch", TEST_CASES)
def test_shape_and_range(kwargs, size, batch):
    set_determinism(0)
    net = BaseGenerator(**kwargs).eval()
    cond = None
    if kwargs.get("condition_channels", 0):
        cond = torch.rand(batch, kwargs["condition_channels"], *size)
    noise = torch.randn(batch, net.noise_channels, *size)
    with torch.no_grad():
        out = net(None, cond, noise)
    assert out.shape == (batch, 1, *size)
    assert out.abs().max() <= 1.0
    # different noise gives a different image
    with torch.no_grad():
        other = net(None, cond, torch.randn_like(noise))
    assert not torch.allclose(out, other)


def test_conditional_without_noise():
    net = BaseGenerator(2, condition_channels=1, noise_channels=0, features=SMALL).eval()
    cond = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(None, cond, None), net(None, cond, None))


def test_smooth_noise_is_unit_variance_and_low_frequency():
    net = BaseGenerator(2, noise_channels=4, features=SMALL, noise_downsample=8)
    noise = torch.randn(2, 4, 256, 256)
    smooth = net.smooth_noise(noise)
    assert smooth.shape == noise.shape
    grid = torch.nn.functional.avg_pool2d(noise, 8) * 8
    assert 0.9 < grid.std() < 1.1
    # neighbouring pixels are strongly correlated after smoothing, not before
    corr = torch.corrcoef(torch.stack([smooth[..., :-1].flatten(), smooth[..., 1:].flatten()]))[0, 1]
    raw = torch.corrcoef(torch.stack([noise[..., :-1].flatten(), noise[..., 1:].flatten()]))[0, 1]
    assert corr > 0.9 and abs(raw) < 0.05


@pytest.mark.parametrize(
    "kwargs,call,match",
    [
        ({"spatial_dims": 2, "noise_channels": 0}, None, "needs a spatial input"),
        ({"spatial_dims": 2, "noise_channels": 2, "latent_channels": 2}, None, "needs a spatial input"),
        ({"spatial_dims": 2, "noise_channels": 2, "latent_channels": 3}, None, "latent_channels must be in"),
        ({"spatial_dims": 2, "noise_channels": 3, "latent_channels": 2, "norm": None}, None, "normalisation layers"),
        ({"spatial_dims": 2, "features": (4, 8)}, None, "6 entries"),
        ({"spatial_dims": 2, "features": SMALL}, ((1, 1, 24, 16), None), "divisible by 16"),
        ({"spatial_dims": 2, "features": SMALL, "noise_downsample": 32}, ((1, 1, 16, 16), None), "divisible by 32"),
        ({"spatial_dims": 2, "features": SMALL}, ((1, 3, 16, 16), None), "noise channels"),
        ({"spatial_dims": 2, "features": SMALL}, ((1, 1, 16, 16), "coarse"), "no coarse"),
    ],
)
def test_bad_input(kwargs, call, match):
    with pytest.raises(ValueError, match=match):
        net = BaseGenerator(**kwargs)
        shape, coarse = call
        x = torch.randn(shape)
        net(x if coarse else None, None, x)


@pytest.mark.parametrize("spatial_dims,size", [(2, (32, 32)), (3, (16, 16, 32))])
def test_latent_code_modulates_every_norm_and_starts_as_the_plain_network(spatial_dims, size):
    set_determinism(0)
    net = BaseGenerator(spatial_dims, noise_channels=6, latent_channels=4, features=SMALL).eval()
    assert net.noise_channels == 6 and len(net._modulated) == 18  # 9 BasicUNet blocks, 2 norms each
    noise = torch.randn(2, 6, *size)
    latent = net.latent(noise)
    assert latent.shape == (2, 4)
    # the latent is the channels' mean times sqrt(pixels): standard normal for standard normal noise
    assert torch.allclose(latent, noise[:, 2:].flatten(2).mean(2) * (noise[0, 0].numel() ** 0.5))
    with torch.no_grad():
        before = net(None, None, noise)
        other_latent = noise.clone()
        other_latent[:, 2:] = torch.randn_like(noise[:, 2:])
        assert torch.allclose(before, net(None, None, other_latent), atol=1e-6)  # zero-initialised modulation
        for m in net._modulated:
            torch.nn.init.normal_(m.affine.weight, std=0.5)
        after = net(None, None, noise)
        assert not torch.allclose(before, after)
        assert not torch.allclose(after, net(None, None, other_latent))  # the latent now changes the image
    assert all(m.style is None for m in net._modulated)  # the style code does not outlive the call


def test_latent_code_is_learnable():
    net = BaseGenerator(2, noise_channels=3, latent_channels=2, features=SMALL)
    net(None, None, torch.randn(2, 3, 32, 32)).mean().backward()
    assert net.mapping[0].weight.grad is not None
    assert all(m.affine.weight.grad is not None for m in net._modulated)


def test_clamped_output_reaches_the_range_ends_and_keeps_gradients():
    net = BaseGenerator(2, noise_channels=2, features=SMALL, output_activation="clamp")
    with torch.no_grad():
        net.unet.final_conv.bias.fill_(-5.0)  # far below the range: exactly -1 (air), not -0.9999
    noise = torch.randn(1, 2, 32, 32)
    out = net(None, None, noise)
    assert torch.equal(out, torch.full_like(out, -1.0))
    out.sum().backward()
    assert net.unet.final_conv.bias.grad.abs().sum() > 0  # straight-through: still learns
    with pytest.raises(ValueError, match="output_activation"):
        BaseGenerator(2, output_activation="relu")
