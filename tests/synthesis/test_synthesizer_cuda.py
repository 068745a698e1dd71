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
    # TF32 convolutions (PyTorch's cuDNN default) round to about 1e-3
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


def test_device_noise_equals_cpu_noise():
    """The counter-based hash gives the same integers on the GPU; the float64 Box–Muller the same float32 values."""
    from monai_msgan.synthesis.noise import hash32, positional_noise, window_noise

    x = torch.randint(0, 2**32, (100_000,), dtype=torch.int64)
    assert torch.equal(hash32(x.cuda()).cpu(), hash32(x))
    for size in [(256, 384), (40, 64, 72)]:
        cpu = positional_noise(5, 2, 3, size)
        gpu = positional_noise(5, 2, 3, size, device="cuda")
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, rtol=0, atol=1e-6)
        assert (gpu.cpu() != cpu).float().mean() < 1e-5  # equal but for rare last-bit differences
    starts = [[0, 0, 0], [7, 30, 11]]
    batch = window_noise(1, 0, 1, starts, (16, 16, 16), "cuda").cpu()
    assert torch.allclose(batch, window_noise(1, 0, 1, starts, (16, 16, 16)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch_invariant", [True, False])
def test_cuda_buffers_and_regions(batch_invariant):
    """On the GPU: device and host buffers give the same image, a region is the crop of the whole one (bit for bit
    with batch_invariant=True), and the fast path (batched, channels-last, bf16) stays close to float32."""
    model = _trained_like(3)
    for p in model.parameters():
        p.data.mul_(0.3)
    size, start, roi = (64, 64, 128), (10, 20, 70), (20, 30, 33)
    kw = {"device": "cuda", "sw_batch_size": 8, "batch_invariant": batch_invariant}
    dev = MultiScaleSynthesizer(model, 32, buffer="device", **kw)(size, seed=4)
    host = MultiScaleSynthesizer(model, 32, buffer="host", **kw)(size, seed=4)
    assert torch.equal(dev, host)
    part = MultiScaleSynthesizer(model, 32, buffer="device", **kw)(size, seed=4, roi_start=start, roi_size=roi)
    crop = dev[(slice(None), *[slice(a, a + n) for a, n in zip(start, roi)])]
    if batch_invariant:
        assert torch.equal(part, crop)
    else:
        assert torch.allclose(part, crop, atol=1e-4)
    fast = MultiScaleSynthesizer(model, 32, amp=True, amp_dtype="bfloat16", channels_last=True, **kw)(size, seed=4)
    assert (fast - dev).abs().mean() < 0.05
