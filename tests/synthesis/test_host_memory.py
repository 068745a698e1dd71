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
"""Keeping freed host memory for reuse (glibc's mmap and trim thresholds): same images, set once per process."""

from __future__ import annotations

import platform

import pytest
import torch

from monai_msgan.synthesis import MultiScaleSynthesizer
from monai_msgan.utils import host_memory, keep_freed_host_memory
from tests.synthesis.test_synthesizer import _trained_like


def test_reuse_host_memory_gives_the_same_image():
    """The allocator setting changes where blocks come from, never a value: batched 3D synthesis before and after it
    is bit-identical (the first run may or may not already have it, depending on the tests before; both must agree)."""
    model = _trained_like(3)
    kwargs = {"sw_batch_size": 4, "batch_invariant": False, "channels_last": True, "device": "cpu"}
    before = MultiScaleSynthesizer(model, 32, **kwargs)((64, 64, 128), seed=5)
    synth = MultiScaleSynthesizer(model, 32, reuse_host_memory=True, **kwargs)
    assert synth.reuse_host_memory
    after = synth((64, 64, 128), seed=5)
    assert torch.equal(before, after)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting exists in glibc only")
def test_keep_freed_host_memory_applies_once_on_glibc():
    assert keep_freed_host_memory() is True
    assert host_memory._applied
    assert keep_freed_host_memory() is True  # idempotent


def test_reuse_host_memory_flag_is_checked():
    with pytest.raises((TypeError, ValueError)):
        MultiScaleSynthesizer(_trained_like(), 16, device="cpu", reuse_host_memory="maybe")
