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

from monai_msgan.synthesis import positional_noise


def test_standard_normal_statistics():
    z = positional_noise(seed=1, stream=0, channels=2, full_size=(256, 256))
    assert z.shape == (2, 256, 256)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    # roughly 95% of a normal sample lies within 1.96 sigma
    inside = (z.abs() < 1.96).float().mean()
    assert 0.94 < inside < 0.96


@pytest.mark.parametrize(
    "size,region", [((40, 30), (slice(5, 25), slice(0, 30))), ((8, 12, 10), (slice(2, 6), slice(3, 12), slice(0, 4)))]
)
def test_region_equals_crop_of_whole(size, region):
    whole = positional_noise(3, 2, 1, size)
    part = positional_noise(3, 2, 1, size, region=region)
    assert torch.equal(part, whole[(slice(None), *region)])


def test_seeds_and_streams_are_independent():
    a = positional_noise(0, 0, 1, (128, 128)).flatten()
    for other in (positional_noise(1, 0, 1, (128, 128)), positional_noise(0, 1, 1, (128, 128))):
        corr = torch.corrcoef(torch.stack([a, other.flatten()]))[0, 1]
        assert abs(corr) < 0.02
    # neighbouring pixels are uncorrelated
    img = positional_noise(5, 0, 1, (256, 256))[0]
    assert abs(torch.corrcoef(torch.stack([img[:, :-1].flatten(), img[:, 1:].flatten()]))[0, 1]) < 0.02


def test_region_outside_raises():
    with pytest.raises(ValueError, match="outside"):
        positional_noise(0, 0, 1, (8, 8), region=(slice(0, 9), slice(0, 8)))
