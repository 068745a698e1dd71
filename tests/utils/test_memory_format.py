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
"""The channels-last layout of networks and tensors: each tensor by its rank, same parameters, same results."""

from __future__ import annotations

import torch

from monai_msgan.utils import channels_last_format, module_to_channels_last, to_channels_last


def test_each_tensor_gets_the_layout_of_its_rank_and_parameters_stay_the_same_objects():
    torch.manual_seed(0)
    net = torch.nn.ModuleDict(
        {"conv2d": torch.nn.Conv2d(3, 4, 3), "conv3d": torch.nn.Conv3d(3, 4, 3), "linear": torch.nn.Linear(5, 2)}
    )
    params = list(net.parameters())
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    assert module_to_channels_last(net) is net
    assert [p is q for p, q in zip(params, net.parameters())] == [True] * len(params)
    assert optimizer.param_groups[0]["params"][0] is net["conv2d"].weight
    w2, w3 = net["conv2d"].weight, net["conv3d"].weight
    assert w2.is_contiguous(memory_format=torch.channels_last) and not w2.is_contiguous()
    assert w3.is_contiguous(memory_format=torch.channels_last_3d) and not w3.is_contiguous()
    assert net["linear"].weight.is_contiguous()
    assert channels_last_format(3) is None and channels_last_format(5) is torch.channels_last_3d


def test_to_channels_last_copies_only_when_needed_and_leaves_other_ranks():
    x = torch.randn(2, 3, 4, 5, 6)
    y = to_channels_last(x)
    assert y.is_contiguous(memory_format=torch.channels_last_3d) and torch.equal(x, y)
    assert to_channels_last(y) is y
    v = torch.randn(2, 3, 4)
    assert to_channels_last(v) is v


def test_a_converted_3d_network_computes_the_same_values_and_gradients():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv3d(8, 1, 3))
    twin = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv3d(8, 1, 3))
    twin.load_state_dict(net.state_dict())
    module_to_channels_last(twin)
    x = torch.randn(2, 2, 12, 12, 12)
    out, out_cl = net(x), twin(to_channels_last(x))
    assert out_cl.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out_cl, out, rtol=1e-5, atol=1e-5)
    out.square().mean().backward()
    out_cl.square().mean().backward()
    torch.testing.assert_close(twin[0].weight.grad, net[0].weight.grad, rtol=1e-4, atol=1e-5)
    # the converted weights save and load into a network in the default layout
    fresh = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv3d(8, 1, 3))
    fresh.load_state_dict(twin.state_dict())
    assert fresh[0].weight.is_contiguous()
    torch.testing.assert_close(fresh(x), out_cl, rtol=1e-5, atol=1e-5)
