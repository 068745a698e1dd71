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
from monai.bundle import ConfigParser

from monai_msgan.networks import IntensityWindows, MinibatchStdDev, PatchDiscriminator, hu_to_unit
from monai_msgan.networks.nets.patch_discriminator import pack_samples
from monai_msgan.utils import module_to_channels_last
from tests.conftest import REPO_ROOT

TEST_CASES_SHAPE = [
    # spatial_dims, size, layers, expected logits size (halved by all but the last layer, which trims 1 with k=4)
    (2, 64, 3, 7),
    (2, 32, 2, 7),
    (3, 32, 2, 7),
]


@pytest.mark.parametrize("spatial_dims,size,layers,out", TEST_CASES_SHAPE)
@pytest.mark.parametrize("mbstd", [0, 2])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_shapes(spatial_dims, size, layers, out, mbstd, spectral_norm):
    net = PatchDiscriminator(
        spatial_dims, in_channels=2, channels=4, num_layers_d=layers, minibatch_std=mbstd, spectral_norm=spectral_norm
    ).eval()
    with torch.no_grad():
        y = net(torch.randn(4, 2, *(size,) * spatial_dims))
    assert y.shape == (4, 1, *(out,) * spatial_dims)
    assert torch.isfinite(y).all()


def test_spectral_norm_bounds_every_convolution():
    net = PatchDiscriminator(2, in_channels=1, channels=4, num_layers_d=2, spectral_norm=True)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    plain = PatchDiscriminator(2, in_channels=1, channels=4, num_layers_d=2)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())


def test_wrong_input_channels_is_a_clear_error():
    net = PatchDiscriminator(2, in_channels=2, channels=4, num_layers_d=2)
    with pytest.raises(ValueError, match="expected 2 input channels, got 1"):
        net(torch.randn(2, 1, 32, 32))


def test_minibatch_std_sees_a_collapsed_batch():
    layer = MinibatchStdDev(group_size=2)
    same = torch.randn(1, 3, 5, 5).repeat(4, 1, 1, 1)
    stat = layer(same)[:, 3]
    assert stat.shape == (4, 5, 5)
    assert stat.abs().max() < 1e-3  # identical samples: no spread
    varied = layer(torch.randn(4, 3, 5, 5))[:, 3]
    assert varied.min() > 0.3  # standard normal features: spread near 1
    # each group's statistic is shared by its members only: samples i and i + 2 form a group
    x = torch.cat([torch.zeros(2, 3, 5, 5), torch.ones(1, 3, 5, 5), torch.zeros(1, 3, 5, 5)])
    s = layer(x)[:, 3, 0, 0]
    assert s[0] > 0.4 and s[2] > 0.4 and s[1] < 1e-3 and s[3] < 1e-3


def test_minibatch_std_makes_the_discriminator_output_depend_on_the_batch():
    torch.manual_seed(0)
    net = PatchDiscriminator(2, in_channels=1, channels=4, num_layers_d=2, minibatch_std=4).eval()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        alone = net(x)
        mixed = net(torch.cat([x[:1], x[:1], x[:1], x[:1]]))
    assert not torch.allclose(alone[0], mixed[0])
    plain = PatchDiscriminator(2, in_channels=1, channels=4, num_layers_d=2).eval()
    with torch.no_grad():
        assert torch.allclose(plain(x)[:1], plain(x[:1]), atol=1e-6)


def test_pack_samples_stacks_consecutive_samples_along_channels():
    x = torch.arange(4 * 2 * 3 * 3, dtype=torch.float32).reshape(4, 2, 3, 3)
    packed = pack_samples(x, 2)
    assert packed.shape == (2, 4, 3, 3)
    for i in range(2):
        for j in range(2):
            assert torch.equal(packed[i, 2 * j : 2 * j + 2], x[2 * i + j])  # sample i*2+j in channels 2j, 2j+1
    assert pack_samples(x, 1) is x
    with pytest.raises(ValueError, match="batch of 4 samples in packs of 3"):
        pack_samples(x, 3)


def test_packed_discriminator_judges_packs_and_sees_a_collapsed_pack():
    torch.manual_seed(0)
    windows = [[-1.0, -0.9], [0.0, 1.0]]  # windows apply per image, before packing
    net = PatchDiscriminator(3, in_channels=1, channels=4, num_layers_d=2, pack=2, input_windows=windows).eval()
    assert net.features[0].conv.in_channels == 2 * 3  # two images, each with its two window channels
    x = torch.rand(4, 1, 16, 16, 16) * 2 - 1
    with torch.no_grad():
        y = net(x)
        assert y.shape[0] == 2  # one logit map per pack of two
        # a pack's logits depend on both of its images, and on nothing outside it
        changed = x.clone()
        changed[1] = x[0]  # the first pack now holds one image twice (a collapsed generator's pack)
        z = net(changed)
    assert not torch.allclose(y[0], z[0])
    assert torch.allclose(y[1], z[1], atol=1e-6)
    # the same result in the channels-last layout (the reshape of packing must not scramble it)
    module_to_channels_last(net)
    with torch.no_grad():
        assert torch.allclose(net(x.contiguous(memory_format=torch.channels_last_3d)), y, atol=1e-5)
    with pytest.raises(ValueError, match="packs of 2 images: a batch of 3"):
        net(x[:3])
    with pytest.raises(ValueError, match="pack must be a whole number"):
        PatchDiscriminator(2, in_channels=1, pack=0)


def test_packed_discriminator_r1_gradients_reach_every_image():
    from monai_msgan.losses import r1_penalty

    net = PatchDiscriminator(2, in_channels=1, channels=4, num_layers_d=2, pack=2)
    real = torch.randn(4, 1, 32, 32, requires_grad=True)
    penalty = r1_penalty(net, real)
    assert torch.isfinite(penalty) and penalty > 0
    out = net(real).sum()
    (grad,) = torch.autograd.grad(out, real)
    assert (grad.flatten(1).abs().sum(1) > 0).all()  # each image of each pack gets a gradient


def test_first_layer_has_no_norm_so_a_uniform_level_is_visible():
    # instance norm on the first convolution (what the network had up to CT bundle 0.4.1 / X-ray bundle 0.5.0)
    # divides out a patch's level: two uniform patches at different levels give the same logits
    torch.manual_seed(0)
    for norm in (None, "batch"):
        net = PatchDiscriminator(3, in_channels=1, channels=4, num_layers_d=2, norm=norm).eval()
        assert len(list(net.features[0].children())) == 2  # conv and an ADN holding the activation only
        assert not any(isinstance(m, torch.nn.modules.instancenorm._InstanceNorm) for m in net.features[0].modules())
        air, haze = torch.full((1, 1, 16, 16, 16), -1.0), torch.full((1, 1, 16, 16, 16), -0.9)
        with torch.no_grad():
            a, h = net(air), net(haze)
        assert (a - h).abs().max() > 0.02 * a.abs().max()  # the logits move with the level (small init weights)
    torch.manual_seed(0)
    old = PatchDiscriminator(3, in_channels=1, channels=4, num_layers_d=2, initial_norm="instance").eval()
    with torch.no_grad():
        a, h = old(air), old(haze)
    assert (a - h).abs().max() < 1e-3 * a.abs().max()


def test_hu_to_unit_maps_the_hu_window_to_the_model_range():
    assert hu_to_unit(-1024, (-1024, 3071)) == -1.0
    assert hu_to_unit(3071.0, (-1024, 3071)) == 1.0
    assert hu_to_unit([[-1024, 1023.5], [3071]], (-1024, 3071)) == [[-1.0, 0.0], [1.0]]
    with pytest.raises(ValueError, match="high > low"):
        hu_to_unit(0, (10, 10))


def test_intensity_windows_known_values_and_gradients():
    layer = IntensityWindows([(-1.0, -0.9), (0.0, 1.0)], channels=1)
    x = torch.tensor([-1.0, -0.95, -0.9, 0.5, 1.0]).view(1, 1, 5).repeat(2, 2, 1).requires_grad_(True)
    y = layer(x)
    assert y.shape == (2, 2 + 2, 5)  # the input, then the two windows of its first channel only
    torch.testing.assert_close(y[:, :2], x)
    t1, t = torch.tanh(torch.tensor(1.0)), torch.tanh
    torch.testing.assert_close(
        y[0, 2], torch.stack([-t1, t(torch.tensor(0.0)), t1, t(torch.tensor(29.0)), t(torch.tensor(39.0))])
    )
    torch.testing.assert_close(
        y[0, 3],
        torch.stack([t(torch.tensor(-3.0)), t(torch.tensor(-2.9)), t(torch.tensor(-2.8)), torch.tensor(0.0), t1]),
    )
    # a 0.05 step in air (about 100 HU in a -1024..3071 HU range) moves the air window by about 0.76
    assert y[0, 2, 1] - y[0, 2, 0] > 0.7
    y[:, 2:].sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[:, 0] != 0).all() and (x.grad[:, 1] == 0).all()
    assert IntensityWindows([(0, 1)]).extra_channels(3) == 3 and layer.extra_channels(3) == 2


@pytest.mark.parametrize(
    "windows,channels", [([], None), ([(1.0, 0.0)], None), ([(0.0, 1.0, 2.0)], None), ([(0, 1)], 0)]
)
def test_intensity_windows_reject_bad_arguments(windows, channels):
    with pytest.raises(ValueError):
        IntensityWindows(windows, channels)


def test_discriminator_with_windows_sees_extra_channels():
    net = PatchDiscriminator(
        2, in_channels=3, channels=4, num_layers_d=2, input_windows=[(-1, -0.9), (0, 1)], window_channels=2
    ).eval()
    assert net.features[0].conv.in_channels == 3 + 2 * 2
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1, 7, 7)
    with pytest.raises(ValueError, match="expected 3 input channels"):
        net(torch.randn(2, 7, 32, 32))
    plain = PatchDiscriminator(2, in_channels=3, channels=4, num_layers_d=2, input_windows=[])
    assert plain.windows is None and plain.features[0].conv.in_channels == 3


def test_ct_bundle_turns_hu_windows_into_discriminator_windows():
    configs = [str(REPO_ROOT / "bundles" / "ct_msgan_3d" / "configs" / f) for f in ("train.json", "quick.json")]
    parser = ConfigParser()
    parser.read_config(configs)
    shipped = parser.get_parsed_content("patch_discriminator")()  # air, lung, soft tissue, bone (docs/quality.md)
    assert len(shipped.windows.windows) == 4 and shipped.features[0].conv.in_channels == 2 + 2 * 4
    assert shipped.windows.windows[0] == pytest.approx((-1.0, -1.0 + 2 * 150 / 4095))
    parser = ConfigParser()
    parser.read_config(configs)
    parser["disc_windows_hu"] = []
    assert parser.get_parsed_content("patch_discriminator")().windows is None  # 0.5.0's discriminators
    parser = ConfigParser()
    parser.read_config(configs)
    parser["disc_windows_hu"] = [[-1024, -874], [200, 1500]]
    patch_d = parser.get_parsed_content("patch_discriminator")()
    base_d = parser.get_parsed_content("base_discriminator")()
    assert patch_d.windows.windows[0] == pytest.approx((-1.0, -1.0 + 2 * 150 / 4095))
    assert patch_d.windows.windows[1] == pytest.approx((-1.0 + 2 * 1224 / 4095, -1.0 + 2 * 2524 / 4095))
    assert patch_d.features[0].conv.in_channels == 2 + 2 * 2  # image and coarse image, two windows each
    assert base_d.pack == 1 and base_d.features[0].conv.in_channels == 1 + 2


@pytest.mark.parametrize("bundle", ["ct_msgan_3d", "xray_msgan_2d"])
def test_bundles_base_discriminator_packs_on_request(bundle):
    # docs/quality.md, run 10: packs of two spread the CT base's samples at a worse SWD, so the default judges
    # images one by one; base_disc_pack packs the base discriminator only (patch scales get diversity from their input)
    configs = [str(REPO_ROOT / "bundles" / bundle / "configs" / f) for f in ("train.json", "quick.json")]
    parser = ConfigParser()
    parser.read_config(configs)
    assert parser.get_parsed_content("base_discriminator")().pack == 1
    parser = ConfigParser()
    parser.read_config(configs)
    parser["base_disc_pack"] = 2
    default_in = parser.get_parsed_content("base_discriminator")().in_channels
    base_d = parser.get_parsed_content("base_discriminator")()
    assert base_d.pack == 2 and base_d.in_channels == default_in
    windows = 0 if base_d.windows is None else base_d.windows.extra_channels(default_in)
    assert base_d.features[0].conv.in_channels == 2 * (default_in + windows)
    assert parser.get_parsed_content("patch_discriminator")().pack == 1


@pytest.mark.parametrize("bundle,instance", [("ct_msgan_3d", False), ("xray_msgan_2d", True)])
def test_bundles_first_layer_norm_is_the_measured_one(bundle, instance):
    # docs/quality.md, run 5: CT leaves the first layer's norm out, X-ray keeps its instance norm
    parser = ConfigParser()
    parser.read_config([str(REPO_ROOT / "bundles" / bundle / "configs" / f) for f in ("train.json", "quick.json")])
    for key in ("base_discriminator", "patch_discriminator"):
        first = parser.get_parsed_content(key)().features[0]
        has = any(isinstance(m, torch.nn.modules.instancenorm._InstanceNorm) for m in first.modules())
        assert has == instance, (bundle, key)
