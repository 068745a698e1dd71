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

from monai_msgan.transforms import EdgeMap, EdgeMapd, gradient_magnitude


def _step(spatial_dims: int, n: int = 32) -> torch.Tensor:
    x = torch.zeros((1,) + (n,) * spatial_dims)
    x[..., n // 2 :] = 1.0  # a step along the last axis
    return x


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_edges_lie_on_the_step_only(spatial_dims):
    edges = EdgeMap(sigma=1.0)(_step(spatial_dims))
    assert edges.shape == (1,) + (32,) * spatial_dims
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    profile = edges.reshape(-1, 32).float().mean(0)  # fraction of edge pixels per position along the last axis
    on = profile.nonzero().flatten().tolist()
    assert min(on) >= 16 - 4 and max(on) <= 15 + 4  # within the smoothing radius of the step
    assert profile[0] == 0 and profile[-1] == 0


def test_edges_do_not_depend_on_intensity_scale_and_flat_images_have_none():
    torch.manual_seed(0)
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 64, 64), 5, 1, 2)[0]
    a = EdgeMap(quantile=0.8)(img)
    b = EdgeMap(quantile=0.8)(img * 7.0 - 3.0)
    assert torch.equal(a, b)
    assert abs(float(a.mean()) - 0.2) < 0.02  # the strongest 20% of gradients
    assert float(EdgeMap()(torch.full((1, 16, 16), 0.3)).sum()) == 0.0


def test_soft_edges_and_gradient_of_a_ramp():
    ramp = torch.linspace(0, 31, 32).repeat(32, 1)[None]  # slope 1 along the last axis
    mag = gradient_magnitude(ramp, sigma=0)
    assert torch.allclose(mag[:, :, 1:-1], torch.ones(1, 32, 30))
    soft = EdgeMap(binary=False)(_step(2))
    assert float(soft.min()) >= 0.0 and float(soft.max()) == 1.0
    assert 0 < float((soft > 0).float().mean()) < 1


def test_dict_version_and_bad_arguments():
    out = EdgeMapd("image", "condition")({"image": _step(2)})
    assert torch.equal(out["condition"], EdgeMap()(_step(2))) and torch.equal(out["image"], _step(2))
    with pytest.raises(ValueError, match="edge_keys"):
        EdgeMapd(["image", "label"], "condition")
    with pytest.raises(ValueError, match="quantile"):
        EdgeMap(quantile=1.0)
    with pytest.raises(ValueError, match="2D or 3D"):
        EdgeMap()(torch.zeros(1, 8))
