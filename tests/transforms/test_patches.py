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
import torch.nn.functional as F
from monai.transforms import Compose

from monai_msgan.transforms import RandScalePatchd, ScalePyramid, ScaleTrainingInputsd, upsample

NUM_SCALES = 3


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("spatial", [(64, 48), (32, 16, 24)])
def test_coarse_patch_matches_downsampled_fine_region(scale, spatial):
    torch.manual_seed(0)
    image = torch.rand(1, *spatial)
    pyramid = ScalePyramid(NUM_SCALES)(image)
    patch = 8
    t = Compose(
        [
            ScaleTrainingInputsd("image", scale, NUM_SCALES, condition_keys="sketch"),
            RandScalePatchd(["image", "coarse", "sketch"], patch, num_samples=5),
        ]
    ).set_random_state(3)
    samples = t({"image": image, "sketch": image * 2})
    cropper = t.transforms[1].cropper
    assert len(samples) == 5
    nd = len(spatial)
    pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
    full_coarse = upsample(pyramid[scale - 1])
    for s in samples:
        assert s["image"].shape == s["coarse"].shape == s["sketch"].shape == (1, *(patch,) * nd)
        # the condition is cropped at the same place as the image
        assert torch.allclose(s["sketch"], s["image"] * 2)
    # the last drawn corner is aligned to the coarser scale's pixel grid
    start = cropper.start
    assert all(c % 2 == 0 for c in start)
    last = samples[-1]
    fine_region = tuple(slice(c, c + patch) for c in start)
    coarse_region = tuple(slice(c // 2, (c + patch) // 2) for c in start)
    # the real patch at this scale is the pyramid's region ...
    assert torch.allclose(last["image"], pyramid[scale][(slice(None), *fine_region)])
    # ... its area-downsampling equals the coarser scale's region exactly ...
    assert torch.allclose(pool(last["image"][None], 2)[0], pyramid[scale - 1][(slice(None), *coarse_region)], atol=1e-6)
    # ... and the coarse input is the coarser scale upsampled, cropped at the same place
    assert torch.allclose(last["coarse"], full_coarse[(slice(None), *fine_region)])


def test_base_scale_has_no_coarse_key():
    d = ScaleTrainingInputsd("image", 0, NUM_SCALES)({"image": torch.rand(1, 16, 16)})
    assert "coarse" not in d and d["image"].shape == (1, 4, 4)


def test_patch_equal_to_image_returns_image():
    img = torch.rand(1, 8, 8)
    d = RandScalePatchd(["image"], 8)({"image": img})
    assert torch.equal(d["image"], img)


def test_seeded_sampling_is_reproducible():
    img = torch.rand(1, 32, 32)
    a = RandScalePatchd(["image"], 8, num_samples=3).set_random_state(7)({"image": img})
    b = RandScalePatchd(["image"], 8, num_samples=3).set_random_state(7)({"image": img})
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b))


def test_errors():
    with pytest.raises(ValueError, match="larger than the image"):
        RandScalePatchd(["image"], 16)({"image": torch.rand(1, 8, 8)})
    with pytest.raises(ValueError, match="same scale"):
        RandScalePatchd(["image", "coarse"], 4)({"image": torch.rand(1, 8, 8), "coarse": torch.rand(1, 4, 4)})
    with pytest.raises(ValueError, match="scale must be in"):
        ScaleTrainingInputsd("image", 3, 3)
    with pytest.raises(ValueError, match="divisible by 4"):
        ScaleTrainingInputsd("image", 1, 3)({"image": torch.rand(1, 10, 8)})
