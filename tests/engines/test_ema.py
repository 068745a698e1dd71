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

from monai_msgan.engines import GeneratorEMA


def test_ema_follows_weights_with_the_given_half_life():
    net = torch.nn.Linear(2, 2)
    ema = GeneratorEMA(net, half_life=1.0, rampup=None)
    start = ema.module.weight.detach().clone()
    assert ema.beta(100) == pytest.approx(0.5)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, iteration=1)
    assert torch.allclose(ema.module.weight, start + 0.5)  # half-way after one half-life
    assert not ema.module.weight.requires_grad


def test_rampup_shortens_the_half_life_early():
    ema = GeneratorEMA(torch.nn.Linear(2, 2), half_life=100.0, rampup=0.1)
    assert ema.beta(10) == pytest.approx(0.5)  # half-life min(100, 1) = 1
    assert ema.beta(10_000) == pytest.approx(0.5 ** (1 / 100))
    assert GeneratorEMA(torch.nn.Linear(2, 2), half_life=0.0).beta(5) == 0.0


def test_ema_stays_in_eval_mode():
    ema = GeneratorEMA(torch.nn.Dropout(0.5), half_life=10)
    ema.train()
    assert not ema.module.training
