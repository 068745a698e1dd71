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
"""Conditioning augmentation: smooth deviations of a random strength per sample."""

from __future__ import annotations

import pytest
import torch

from monai_msgan.engines import degrade_coarse


def test_zero_strength_returns_the_input_itself():
    coarse = torch.rand(2, 1, 8, 8)
    assert degrade_coarse(coarse, 0.0) is coarse


def test_deviations_are_smooth_bounded_and_of_a_random_strength_per_sample():
    torch.manual_seed(0)
    coarse = torch.zeros(64, 1, 32, 32)
    deviation = degrade_coarse(coarse, 0.5, cell=8)
    per_sample = deviation.flatten(1).std(dim=1)
    # each sample's standard deviation is drawn from [0, 0.5]: spread over that range, never far above it
    assert per_sample.max() < 0.5 * 1.5 and per_sample.min() < 0.1 and per_sample.max() > 0.3
    # interpolated from a grid 8 pixels a side: neighbouring pixels differ far less than the deviation does
    steps = (deviation[..., 1:] - deviation[..., :-1]).abs().mean()
    assert steps < 0.3 * deviation.abs().mean()
    # a finer grid gives a rougher deviation
    torch.manual_seed(0)
    rough = degrade_coarse(coarse, 0.5, cell=1)
    assert (rough[..., 1:] - rough[..., :-1]).abs().mean() > 3 * steps


def test_volumes_dtype_and_memory_format_are_kept():
    coarse = torch.rand(2, 1, 8, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d)
    degraded = degrade_coarse(coarse, 0.1)
    assert degraded.shape == coarse.shape and degraded.dtype == torch.bfloat16
    assert degraded.is_contiguous(memory_format=torch.channels_last_3d)
    assert not torch.equal(degraded, coarse)
    tiny = torch.rand(1, 1, 2, 3)  # smaller than a grid cell: one grid point a side
    assert degrade_coarse(tiny, 0.1).shape == tiny.shape


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="strength must be non-negative"):
        degrade_coarse(torch.rand(1, 1, 4, 4), -0.1)
    with pytest.raises(ValueError, match="2 or 3 spatial dimensions"):
        degrade_coarse(torch.rand(1, 1, 4), 0.1)
