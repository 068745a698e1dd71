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

from monai_msgan.networks import BaseGenerator, MultiScaleGenerator, PatchGenerator
from monai_msgan.utils import generator_path, save_weights


def _model(num_scales=3, patch_channels=4):
    return MultiScaleGenerator(
        BaseGenerator(2, features=(4, 4, 8, 8, 8, 4)),
        lambda: PatchGenerator(2, channels=patch_channels, num_res_blocks=1),
        num_scales=num_scales,
    )


def test_factory_builds_one_network_per_scale():
    model = _model(4)
    assert model.num_scales == 4
    assert len({id(model.scale(s)) for s in range(4)}) == 4
    assert isinstance(model.scale(0), BaseGenerator) and isinstance(model.scale(3), PatchGenerator)
    with pytest.raises(IndexError):
        model.scale(4)


def test_load_checkpoints_round_trip(tmp_path):
    src = _model()
    for p in src.parameters():
        torch.nn.init.normal_(p)
    for s in range(src.num_scales):
        save_weights(src.scale(s).state_dict(), generator_path(tmp_path, s))
    dst = _model()
    dst.load_checkpoints(tmp_path)
    for a, b in zip(src.state_dict().values(), dst.state_dict().values()):
        assert torch.equal(a, b)


def test_load_checkpoints_errors(tmp_path):
    model = _model()
    with pytest.raises(FileNotFoundError, match=r"scale\(s\) \[0, 1, 2\]"):
        model.load_checkpoints(tmp_path)
    other = _model(patch_channels=8)
    for s in range(3):
        save_weights(other.scale(s).state_dict(), generator_path(tmp_path, s))
    with pytest.raises(ValueError, match="does not match the generator of scale 1"):
        model.load_checkpoints(tmp_path)
    generator_path(tmp_path, 0).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights-only"):
        model.load_checkpoints(tmp_path)


def test_mismatched_scale_count():
    with pytest.raises(ValueError, match="needs 2 patch generators"):
        MultiScaleGenerator(BaseGenerator(2), [PatchGenerator(2)], num_scales=3)
    with pytest.raises(ValueError, match="same spatial_dims"):
        MultiScaleGenerator(BaseGenerator(2), [PatchGenerator(3)])


def test_load_only_some_scales(tmp_path):
    """The low-resolution baseline needs the base alone; a missing finer scale is then no error."""
    src = _model()
    for p in src.parameters():
        torch.nn.init.normal_(p)
    save_weights(src.base.state_dict(), generator_path(tmp_path, 0))
    dst = _model()
    before = [p.clone() for p in dst.patches.parameters()]
    dst.load_checkpoints(tmp_path, scales=1)
    assert all(torch.equal(a, b) for a, b in zip(src.base.state_dict().values(), dst.base.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(before, dst.patches.parameters()))
    with pytest.raises(FileNotFoundError, match=r"scale\(s\) \[1\]"):
        dst.load_checkpoints(tmp_path, scales=[0, 1])
    with pytest.raises(IndexError):
        dst.load_checkpoints(tmp_path, scales=[5])
