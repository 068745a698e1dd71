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
        ({"spatial_dims": 2, "noise_channels": 0}, None, "needs an input"),
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
