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
"""Label maps as conditions: remapping, one-hot / index encoding, and nearest-neighbour scale pyramids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_msgan.transforms import (
    LabelEncode,
    LabelEncoded,
    LabelRemap,
    LabelRemapd,
    ScalePyramid,
    ScalePyramidd,
    ScaleTrainingInputsd,
)

TEST_CASE_REMAP = [
    ({1: 0, 2: 1, 7: 1}, None, [[1, 2], [7, 1]], [[0, 1], [1, 0]]),
    ({"0": 0, "5": 2}, 1, [[0, 5], [9, 3]], [[0, 2], [1, 1]]),  # JSON keys; unmapped values to the default
]


@pytest.mark.parametrize("mapping,default,labels,expected", TEST_CASE_REMAP)
def test_remap_known_answers(mapping, default, labels, expected):
    out = LabelRemap(mapping, default)(torch.tensor([labels], dtype=torch.float32))
    assert out.dtype == torch.int64 and out.tolist() == [expected]
    d = LabelRemapd("label", mapping, default)({"label": np.array([labels], dtype=np.uint8)})
    assert d["label"].tolist() == [expected]


def test_remap_refuses_unknown_and_interpolated_values():
    remap = LabelRemap({0: 0, 1: 1})
    with pytest.raises(ValueError, match=r"label values \[4, 300\] have no mapping"):
        remap(torch.tensor([[0, 4, 300, 1]]))
    with pytest.raises(ValueError, match="non-integer values .*nearest-neighbour"):
        remap(torch.tensor([[0.0, 0.5]]))
    named = MetaTensor(torch.tensor([[0, 3]]), meta={"filename_or_obj": "/data/seg_07.nii.gz"})
    with pytest.raises(ValueError, match=r"seg_07.nii.gz: label values \[3\]"):
        remap(named)


@pytest.mark.parametrize("spatial", [(6, 5), (4, 3, 5)])
def test_onehot_sums_to_one_and_inverts(spatial):
    labels = torch.randint(0, 4, (1, *spatial), generator=torch.Generator().manual_seed(0))
    onehot = LabelEncode(4)(labels)
    assert onehot.shape == (4, *spatial) and onehot.dtype == torch.float32
    assert set(onehot.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(onehot.sum(0), torch.ones(spatial))
    assert torch.equal(onehot.argmax(0), labels[0])
    index = LabelEncode(4, "index")(labels)
    assert index.shape == (1, *spatial) and torch.equal(index, labels.float())


def test_encode_refuses_out_of_range_values():
    with pytest.raises(ValueError, match=r"label values \[5\] are outside 0..3 .*label_mapping"):
        LabelEncode(4)(torch.tensor([[[0, 5]]]))
    with pytest.raises(ValueError, match="channel-first"):
        LabelEncode(4)(torch.zeros(2, 3, 3))


def test_encoded_remaps_then_encodes_and_keeps_the_remapped_label():
    # values as after a nearest-neighbour Spacingd: float64, exact integers
    labels = torch.tensor([[[0, 200], [10, 25]]], dtype=torch.float64)
    mapping = {0: 0, 200: 1, 10: 2, 25: 3}
    d = LabelEncoded("label", "condition", num_classes=5, mapping=mapping)({"label": labels, "image": 1})
    assert d["label"].dtype == torch.uint8 and d["label"].tolist() == [[[0, 1], [2, 3]]]
    assert d["condition"].shape == (5, 2, 2) and d["condition"][:, 1, 1].tolist() == [0, 0, 0, 1, 0]
    assert d["image"] == 1
    named = MetaTensor(torch.tensor([[[0, 7]]]), meta={"filename_or_obj": "case3_label.nii.gz"})
    with pytest.raises(ValueError, match="case3_label.nii.gz: label values"):
        LabelEncoded("label", "condition", num_classes=2, mapping={0: 0, 1: 1})({"label": named})


def test_nearest_pyramid_never_interpolates_labels():
    labels = torch.tensor([[[3, 3, 9, 9], [3, 3, 9, 9], [1, 7, 2, 2], [7, 1, 2, 2]]])
    levels = ScalePyramid(3, mode="nearest")(labels)
    # one voxel of each 2x2 block (the first), never a mixture
    assert levels[1].tolist() == [[[3, 9], [1, 2]]] and levels[0].tolist() == [[[3]]]
    area = ScalePyramid(2, mode="area")(labels.float())
    assert area[0][0, 1, 0] == 4.0  # area averaging would invent label 4 from 1s and 7s
    big = torch.randint(0, 90, (1, 16, 16, 8), generator=torch.Generator().manual_seed(1))
    for level in ScalePyramid(4, mode="nearest")(big):
        assert set(level.unique().tolist()) <= set(big.unique().tolist())


@pytest.mark.parametrize("spatial", [(8, 8), (8, 4, 8)])
def test_onehot_condition_stays_onehot_at_every_scale(spatial):
    """Keeping one voxel per block commutes with one-hot encoding: training inputs and the synthesizer's pyramid
    see a one-hot map at every scale, equal to the encoding of the downsampled labels."""
    labels = torch.randint(0, 5, (1, *spatial), generator=torch.Generator().manual_seed(2))
    onehot = LabelEncode(5)(labels)
    label_levels = ScalePyramid(3, "nearest")(labels)
    d = ScalePyramidd("condition", 3, mode="nearest")({"condition": onehot})
    for s in range(3):
        assert torch.equal(d[f"condition_scale{s}"], LabelEncode(5)(label_levels[s]))
        assert torch.equal(d[f"condition_scale{s}"].sum(0), torch.ones(label_levels[s].shape[1:]))
        inputs = ScaleTrainingInputsd("image", s, 3, condition_keys="condition", condition_mode="nearest")(
            {"image": torch.zeros(1, *spatial), "condition": onehot}
        )
        assert torch.equal(inputs["condition"], d[f"condition_scale{s}"])
