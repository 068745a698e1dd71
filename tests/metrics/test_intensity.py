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

import numpy as np
import pytest
import torch

from monai_msgan.metrics import intensity_distance, intensity_quantiles, outside_body_air


def test_intensity_distance_known_answers():
    torch.manual_seed(0)
    real = [torch.rand(1, 64, 64) for _ in range(3)]
    assert intensity_distance([real[0]], real)["mean"] < 0.02  # same distribution
    shifted = intensity_distance([real[0] + 0.3], real)
    assert shifted["mean"] == pytest.approx(0.3, abs=0.02)  # a shift of c costs c
    flat = intensity_distance([torch.full((1, 64, 64), 0.5)], real)["mean"]
    assert flat == pytest.approx(0.25, abs=0.02)  # uniform [0, 1] vs a point at its mean: E|U - 0.5| = 1/4
    with pytest.raises(ValueError):
        intensity_distance([], real)


def test_quantiles():
    q = intensity_quantiles([torch.arange(1001, dtype=torch.float32)])
    assert q["p50"] == pytest.approx(500) and q["p99.9"] == pytest.approx(999)


def _phantom(background: float) -> np.ndarray:
    """A body (soft tissue, 0 HU) holding two lungs (-850 HU) and a bone (1500 HU) in ``background``."""
    v = np.full((48, 48, 16), background, dtype=np.float32)
    zz, yy = np.mgrid[0:48, 0:48]
    body = (zz - 24) ** 2 / 18**2 + (yy - 24) ** 2 / 14**2 <= 1
    v[body] = 0.0
    for cx in (16, 32):
        v[((zz - cx) ** 2 + (yy - 24) ** 2 <= 25)] = -850.0
    v[(zz - 24) ** 2 + (yy - 34) ** 2 <= 4] = 1500.0
    return v


def test_outside_body_air_known_answers():
    real = outside_body_air(_phantom(-1024.0))
    assert real["outside_air_fraction"] == 1.0  # air around the body, lungs counted inside
    zz, yy = np.mgrid[0:48, 0:48]
    ellipse = (zz - 24) ** 2 / 18**2 + (yy - 24) ** 2 / 14**2 <= 1  # the body outline, lungs and bone inside it
    assert real["outside_fraction"] == pytest.approx(1 - ellipse.sum() / ellipse.size, abs=0.01)
    fog = outside_body_air(_phantom(-800.0))  # "air" 200 HU too bright: outside, but not air
    assert fog["outside_air_fraction"] == 0.0 and fog["outside_fraction"] > 0.3
    gray = outside_body_air(np.full((32, 32, 8), -180.0))  # soft tissue everywhere: no outside at all
    assert gray == {"outside_fraction": 0.0, "outside_air_fraction": 0.0}
    with pytest.raises(ValueError, match="3D volume"):
        outside_body_air(np.zeros((8, 8)))
