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
from monai_msgan.synthesis.noise import hash32, window_noise


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


def _hash32_reference(x: int) -> int:
    """The murmur3 finaliser on plain Python integers (arbitrary precision, masked to 32 bits)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_tensor_hash_is_exact_over_the_whole_32_bit_range():
    """The int64 tensor hash never overflows, so it equals exact integer arithmetic, also at the extremes."""
    values = [0, 1, 2**31 - 1, 2**31, 2**32 - 1] + torch.randint(0, 2**32, (200,), dtype=torch.int64).tolist()
    got = hash32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [_hash32_reference(v) for v in values]


def test_same_values_for_every_dtype_and_as_a_batch_of_windows():
    full = positional_noise(8, 1, 2, (40, 50, 30), dtype=torch.float64)
    assert torch.equal(positional_noise(8, 1, 2, (40, 50, 30)), full.float())
    assert torch.equal(positional_noise(8, 1, 2, (40, 50, 30), dtype=torch.bfloat16), full.bfloat16())
    starts = [[0, 0, 0], [5, 17, 9], [30, 40, 20]]
    batch = window_noise(8, 1, 2, starts, (10, 10, 10))
    for b, (x, y, z) in zip(batch, starts):
        assert torch.equal(b, full[:, x : x + 10, y : y + 10, z : z + 10].float())


def test_noise_does_not_depend_on_the_image_size():
    """A value is a function of its global position alone: a larger image extends the field, it does not change it."""
    small = positional_noise(2, 3, 1, (32, 48))
    large = positional_noise(2, 3, 1, (64, 96))
    assert torch.equal(large[:, :32, :48], small)
