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

from monai_msgan.transforms import ScalePyramid, ScalePyramidd, downsample, upsample


@pytest.mark.parametrize("size", [(16, 24), (8, 8, 12)])
def test_pyramid_levels_are_block_means(size):
    x = torch.rand(2, *size)
    levels = ScalePyramid(3)(x)
    assert [tuple(lv.shape[1:]) for lv in levels] == [tuple(s // 4 for s in size), tuple(s // 2 for s in size), size]
    assert torch.equal(levels[-1], x)
    # area downsampling: every coarse pixel is the mean of its 2x2(x2) block
    idx = (slice(None),) + tuple(slice(0, 2) for _ in size)
    assert torch.allclose(levels[1][(slice(None),) + (0,) * len(size)], x[idx].flatten(1).mean(1))
    # the mean intensity is preserved at every level
    for lv in levels:
        assert torch.allclose(lv.mean(), x.mean(), atol=1e-6)


def test_nearest_mode_keeps_labels():
    labels = torch.randint(0, 5, (1, 16, 16)).float()
    coarse = ScalePyramid(2, mode="nearest")(labels)[0]
    assert set(coarse.unique().tolist()) <= set(labels.unique().tolist())
    assert torch.equal(coarse, labels[:, ::2, ::2])


def test_upsample_doubles_and_preserves_constant():
    x = torch.full((1, 4, 6), 0.3)
    up = upsample(x)
    assert up.shape == (1, 8, 12)
    assert torch.allclose(up, torch.full_like(up, 0.3))
    assert torch.allclose(downsample(upsample(x)), x)


def test_dict_version_writes_every_level():
    d = ScalePyramidd(["image", "label"], 3, mode=["area", "nearest"])(
        {"image": torch.rand(1, 8, 8), "label": torch.ones(1, 8, 8)}
    )
    assert d["image_scale0"].shape == (1, 2, 2) and d["label_scale2"].shape == (1, 8, 8)


def test_errors():
    with pytest.raises(ValueError, match="divisible by 4"):
        ScalePyramid(3)(torch.rand(1, 12, 10))
    with pytest.raises(ValueError, match="even"):
        downsample(torch.rand(1, 5, 4))
    with pytest.raises(ValueError, match="mode"):
        ScalePyramid(2, mode="cubic")
