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

from monai_msgan.networks import MinibatchStdDev, PatchDiscriminator

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
