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

from monai_msgan.metrics import body_mask, body_solidity, intensity_distance, intensity_quantiles, outside_body_air


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


def test_body_solidity_known_answers():
    # a body in air with its lungs: convex
    assert body_solidity(_phantom(-1024.0)) == 1.0
    box = np.full((30, 30, 3), -1000.0, dtype=np.float32)
    box[5:25, 8:20] = 40.0
    assert body_solidity(box) == 1.0  # a rectangle is its own hull
    # an L of 144 pixels; the hull of its pixel centres, (0,0)-(19,0)-(19,3)-(3,19)-(0,19), leaves out the 136
    # centres with x + y > 22 of the 20 x 20 square: 264 inside
    ell = np.full((20, 20, 3), -1000.0, dtype=np.float32)
    ell[:, :4] = 40.0
    ell[:4, :] = 40.0
    assert body_solidity(ell) == pytest.approx(144 / 264)
    # a ring counts as its filled disk (holes filled, like lungs); a C open on one side does not
    zz, yy = np.mgrid[0:48, 0:48]
    r2 = (zz - 24) ** 2 + (yy - 24) ** 2
    ring = np.full((48, 48, 4), -1000.0, dtype=np.float32)
    ring[(r2 <= 400) & (r2 >= 225)] = 40.0
    disk = np.where((r2 <= 400)[..., None], 40.0, -1000.0).astype(np.float32).repeat(4, -1)
    assert body_solidity(ring) == pytest.approx(body_solidity(disk))
    c_shape = ring.copy()
    c_shape[20:28, 24:] = -1000.0
    assert body_solidity(c_shape) < body_solidity(ring) - 0.2
    # the slice axis is the last one: a shape that is convex in every axial slice scores 1 whatever its z-profile
    steps = np.full((16, 16, 8), -1000.0, dtype=np.float32)
    for z in range(8):
        steps[2 : 4 + z, 2:10, z] = 40.0
    assert body_solidity(steps) == 1.0
    assert body_solidity(np.full((16, 16, 4), -1000.0)) == 0.0  # no body
    with pytest.raises(ValueError, match="3D volume"):
        body_solidity(np.zeros((8, 8)))


def test_air_and_solidity_take_a_body_mask_computed_once():
    volume = _phantom(-1024.0)
    body = body_mask(volume)
    assert outside_body_air(volume, body=body) == outside_body_air(volume)
    assert body_solidity(volume, body=body) == body_solidity(volume)
    # the mask given is the one used: half the body cut away leaves outside voxels that are not air
    half = body.copy()
    half[:, :24] = False
    assert outside_body_air(volume, body=half)["outside_air_fraction"] < 1.0
    with pytest.raises(ValueError, match="body mask's shape"):
        body_solidity(volume, body=body[:-1])
