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
"""Checks that need CUDA: they skip cleanly without it."""

from __future__ import annotations

import pytest
import torch

from monai_msgan.synthesis import MultiScaleSynthesizer
from tests.synthesis.test_synthesizer import _trained_like

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cuda_matches_cpu_up_to_rounding():
    model = _trained_like()
    cpu = MultiScaleSynthesizer(model, 32, device="cpu")((128, 192), seed=4)
    gpu = MultiScaleSynthesizer(model, 32, device="cuda", sw_batch_size=8)((128, 192), seed=4)
    assert gpu.device.type == "cpu"  # the image is assembled on the host
    assert torch.allclose(cpu, gpu, atol=1e-3)


def test_cuda_memory_does_not_follow_output_size():
    model = _trained_like()
    synth = MultiScaleSynthesizer(model, 32, device="cuda", sw_batch_size=4)
    peaks = []
    for size in [(256, 256), (1024, 1024)]:  # 16x the pixels
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        synth(size, seed=0)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated())
    # only the base (1/16 of the pixels) grows with the output; the patch scales' windows do not
    assert peaks[1] < 2 * peaks[0] + 32 * 2**20, peaks
