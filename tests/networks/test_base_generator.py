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
from monai_msgan.networks.blocks import LatentModulatedNorm

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


@pytest.mark.parametrize(
    "spatial_dims,size,downsample,latent",
    [(2, (64, 32), 8, 3), (3, (16, 32, 16), 4, 2), (2, (32, 32), 1, 2), (3, (16, 16, 32), 8, 0)],
)
def test_sample_noise_is_what_the_network_reads_from_iid_noise(spatial_dims, size, downsample, latent):
    """The drawn noise's smoothed grid and latent code are i.i.d. standard normal, as they are for per-voxel noise,
    and the network reads nothing else of it."""
    set_determinism(0)
    net = BaseGenerator(
        spatial_dims, noise_channels=2 + latent, latent_channels=latent, noise_downsample=downsample, features=SMALL
    )
    memory_format = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    noise = net.sample_noise(3, size, memory_format=memory_format)
    assert noise.shape == (3, 2 + latent, *size) and noise.is_contiguous(memory_format=memory_format)
    pool = torch.nn.functional.avg_pool2d if spatial_dims == 2 else torch.nn.functional.avg_pool3d
    draws = [net.sample_noise(64, size) for _ in range(4)]
    grids = torch.cat([pool(d[:, :2], downsample) * downsample ** (spatial_dims / 2) for d in draws])
    if downsample > 1:  # one value per block, read back exactly by the network's block average
        upsampled = grids[:3].repeat_interleave(downsample, 2).repeat_interleave(downsample, 3)
        if spatial_dims == 3:
            upsampled = upsampled.repeat_interleave(downsample, 4)
        assert torch.allclose(draws[0][:3, :2] * downsample ** (spatial_dims / 2), upsampled, atol=1e-5)
    assert abs(float(grids.mean())) < 0.05 and 0.95 < float(grids.std()) < 1.05
    neighbours = torch.corrcoef(torch.stack([grids[..., :-1].flatten(), grids[..., 1:].flatten()]))[0, 1]
    assert abs(float(neighbours)) < 0.05  # independent from block to block
    if latent:
        codes = torch.cat([net.latent(d) for d in draws])
        assert codes.shape == (256, latent)
        assert abs(float(codes.mean())) < 0.1 and 0.9 < float(codes.std()) < 1.1
        assert abs(float(torch.corrcoef(codes.T)[0, 1])) < 0.2
    # the same image as from per-voxel noise with the same block means and latent channel means
    iid = torch.randn_like(noise)
    block_mean = pool(iid[:, :2], downsample)
    iid[:, :2] += torch.nn.functional.interpolate(pool(noise[:, :2], downsample) - block_mean, scale_factor=downsample)
    extra = (1,) * spatial_dims
    iid[:, 2:] += (noise[:, 2:].flatten(2).mean(2) - iid[:, 2:].flatten(2).mean(2)).reshape(3, latent, *extra)
    for m in net._modulated:  # a non-trivial style path
        torch.nn.init.normal_(m.affine.weight, std=0.5)
    with torch.no_grad():
        assert torch.allclose(net(None, None, iid), net(None, None, noise), atol=1e-4)


@pytest.mark.parametrize(
    "kwargs,size,match",
    [
        ({"noise_channels": 0, "condition_channels": 1}, (32, 32), "takes no noise"),
        ({"noise_channels": 2}, (32,), "needs 2 entries"),
        ({"noise_channels": 2, "noise_downsample": 8}, (32, 36), "divisible by noise_downsample"),
    ],
)
def test_sample_noise_refuses_what_it_cannot_draw(kwargs, size, match):
    net = BaseGenerator(2, features=SMALL, **kwargs)
    with pytest.raises(ValueError, match=match):
        net.sample_noise(1, size)


@pytest.mark.parametrize("spatial_dims,affine", [(2, True), (3, True), (3, False)])
def test_modulated_instance_norm_is_norm_then_modulation_in_one_pass(spatial_dims, affine):
    """The fused instance norm + modulation equals the two layers one after the other (values and gradients), keeps
    a channels-last input's layout, and other normalisations take the general path."""
    torch.manual_seed(0)
    instance = torch.nn.InstanceNorm2d if spatial_dims == 2 else torch.nn.InstanceNorm3d
    layer = LatentModulatedNorm(instance(6, affine=affine), 6, style_dim=5)
    torch.nn.init.normal_(layer.affine.weight, std=0.5)
    torch.nn.init.normal_(layer.affine.bias, std=0.5)
    if affine:
        torch.nn.init.normal_(layer.norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(layer.norm.bias, 0.0, 0.3)
    size = (3, 6, 8, 10) if spatial_dims == 2 else (3, 6, 6, 8, 4)
    memory_format = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    x = (torch.randn(size) * 3 + 2).contiguous(memory_format=memory_format).requires_grad_(True)
    style = torch.randn(3, 5, requires_grad=True)
    layer.style = style
    fused = layer(x)
    assert fused.is_contiguous(memory_format=memory_format)
    gamma, beta = layer.affine(style).chunk(2, dim=1)
    shape = (3, 6) + (1,) * spatial_dims
    reference = layer.norm(x) * (1 + gamma.reshape(shape)) + beta.reshape(shape)
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
    weights = torch.randn(size)
    grads = [torch.autograd.grad((y * weights).sum(), [x, style, *layer.parameters()]) for y in (fused, reference)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    layer.style = None
    torch.testing.assert_close(layer(x), layer.norm(x))  # without a style code: the plain norm
    group = LatentModulatedNorm(torch.nn.GroupNorm(2, 6), 6, style_dim=5)
    group.style = style
    torch.testing.assert_close(group(x), group.norm(x))  # zero-initialised modulation, general path
