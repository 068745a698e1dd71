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

from monai_msgan.networks import PatchGenerator

TEST_CASE_2D = [{"spatial_dims": 2, "channels": 8, "num_res_blocks": 1}, (32, 16), 2]
TEST_CASE_3D = [{"spatial_dims": 3, "channels": 4, "num_res_blocks": 1}, (8, 16, 8), 2]
TEST_CASE_COND = [{"spatial_dims": 2, "channels": 8, "num_res_blocks": 2, "condition_channels": 3}, (16, 16), 1]
TEST_CASE_NO_NOISE = [{"spatial_dims": 3, "channels": 4, "num_downsamples": 1, "noise_channels": 0}, (4, 6, 8), 1]
TEST_CASE_NORM = [{"spatial_dims": 2, "channels": 4, "norm": "BATCH", "out_channels": 2}, (8, 8), 2]
TEST_CASES = [TEST_CASE_2D, TEST_CASE_3D, TEST_CASE_COND, TEST_CASE_NO_NOISE, TEST_CASE_NORM]


def _inputs(net: PatchGenerator, size, batch):
    coarse = torch.rand(batch, net.out_channels, *size) * 2 - 1
    cond = torch.rand(batch, net.condition_channels, *size) if net.condition_channels else None
    noise = torch.randn(batch, net.noise_channels, *size) if net.noise_channels else None
    return coarse, cond, noise


@pytest.mark.parametrize("kwargs,size,batch", TEST_CASES)
def test_starts_as_identity_on_coarse(kwargs, size, batch):
    net = PatchGenerator(**kwargs).eval()
    coarse, cond, noise = _inputs(net, size, batch)
    with torch.no_grad():
        out = net(coarse, cond, noise)
    assert out.shape == coarse.shape
    # the residual head starts at zero: an untrained generator returns the upsampled coarse patch
    assert torch.equal(out, coarse)


@pytest.mark.parametrize("kwargs,size,batch", TEST_CASES)
def test_residual_depends_on_inputs_after_training_step(kwargs, size, batch):
    torch.manual_seed(0)
    net = PatchGenerator(**kwargs)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    coarse, cond, noise = _inputs(net, size, batch)
    for _ in range(2):  # two steps: the first moves the zero head, the second reaches the body
        opt.zero_grad()
        (net(coarse, cond, noise) - 0.5).pow(2).mean().backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = net(coarse, cond, noise)
    assert not torch.equal(out, coarse)
    assert torch.isfinite(out).all()


def test_bad_input():
    net = PatchGenerator(2, channels=4, num_downsamples=2)
    with pytest.raises(ValueError, match="coarse patch"):
        net(None, None, torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 6, 8), None, torch.randn(1, 1, 6, 8))
    with pytest.raises(ValueError, match="condition channels"):
        net(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_without_coarse_input_generates_from_condition_and_noise(spatial_dims):
    torch.manual_seed(0)
    net = PatchGenerator(spatial_dims, condition_channels=1, noise_channels=1, channels=4, coarse_input=False)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    size = (2, 1) + (16,) * spatial_dims
    cond, noise = torch.rand(size), torch.randn(size)
    out = net(None, cond, noise)
    assert out.shape == size and float(out.abs().max()) <= 1.0  # tanh range
    assert not torch.allclose(out, net(None, torch.rand(size), noise))  # the condition drives it
    with pytest.raises(ValueError, match="coarse=None"):
        net(torch.zeros(size), cond, noise)
    with pytest.raises(ValueError, match="condition and/or noise"):
        PatchGenerator(spatial_dims, noise_channels=0, coarse_input=False)
