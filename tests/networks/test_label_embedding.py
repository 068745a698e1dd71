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
"""The learned label embedding and the generators' label_embedding option, in 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from monai_msgan.networks import BaseGenerator, LabelEmbedding, PatchGenerator
from monai_msgan.transforms import LabelEncode

TEST_CASES = [(2, (32, 32)), (3, (32, 16, 16))]


def test_embedding_is_a_lookup_of_the_class_vectors():
    emb = LabelEmbedding(4, 3)
    labels = torch.tensor([[[[0, 3], [2, 2]]]], dtype=torch.float32)  # (B, 1, 2, 2)
    out = emb(labels)
    assert out.shape == (1, 3, 2, 2)
    assert torch.equal(out[0, :, 0, 1], emb.embedding.weight[3])
    # the same as a 1x1 convolution of the one-hot map with the embedding matrix
    onehot = LabelEncode(4)(labels[0])
    assert torch.allclose(out[0], torch.einsum("kc,khw->chw", emb.embedding.weight, onehot))
    with pytest.raises(ValueError, match=r"class indices must be in 0..3, got 1..4"):
        emb(labels + 1)
    with pytest.raises(ValueError, match=r"\(B, 1, \*spatial\)"):
        emb(torch.zeros(1, 2, 4, 4))


@pytest.mark.parametrize("spatial_dims,size", TEST_CASES)
def test_generators_embed_a_one_channel_label_map(spatial_dims, size):
    features = (4, 4, 8, 8, 16, 4)
    base = BaseGenerator(
        spatial_dims, condition_channels=1, noise_channels=2, features=features, label_embedding=(5, 3)
    )
    patch = PatchGenerator(spatial_dims, condition_channels=1, channels=4, num_res_blocks=1, label_embedding=(5, 3))
    labels = torch.randint(0, 5, (2, 1, *size), generator=torch.Generator().manual_seed(0)).float()
    base.eval()
    patch.eval()
    with torch.no_grad():
        out = base(None, labels, torch.randn(2, 2, *size))
        assert out.shape == (2, 1, *size) and out.abs().max() <= 1
        refined = patch(torch.zeros(2, 1, *size), labels, torch.randn(2, 1, *size))
        assert refined.shape == (2, 1, *size)
    # the embedding is trained with the generator
    loss = base(None, labels, torch.randn(2, 2, *size)).mean()
    loss.backward()
    assert base.label_embedding.embedding.weight.grad.abs().sum() > 0
    # the class values matter: another map gives another image
    with torch.no_grad():
        noise = torch.randn(1, 2, *size)
        assert not torch.equal(base(None, labels[:1], noise), base(None, (labels[:1] + 1) % 5, noise))


def test_label_embedding_needs_a_one_channel_condition():
    with pytest.raises(ValueError, match="condition_channels 1"):
        BaseGenerator(2, condition_channels=5, label_embedding=(5, 3))
    with pytest.raises(ValueError, match=r"\(num_classes, embedding_dim\)"):
        PatchGenerator(2, condition_channels=1, label_embedding=(5,))
    # without the option, state dicts are unchanged (existing checkpoints still load)
    assert not any("label_embedding" in k for k in PatchGenerator(2, condition_channels=1).state_dict())
