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
"""Keep freed host memory in the process for reuse instead of returning it to the system after every window batch.

Sliding-window synthesis on a CPU allocates the same large activation tensors for every batch of windows (at 8
windows of 64³ with 16 channels, 134 MB each). glibc's ``malloc`` serves allocations above its mmap threshold (at
most 32 MiB by default) with fresh ``mmap`` pages and unmaps them on ``free``, so every batch touches all of its
memory for the first time again and pays a page fault per 4 KiB page. Raising the mmap and trim thresholds keeps
freed blocks in the heap, where the next batch reuses them: the CT patch generator on 8 windows of 64³ runs about
1.3 times faster on 2 cores (0.88 s against 1.15 s per batch), with the same results. The process no longer gives
memory back after a peak, and where allocation sizes vary (the whole-image baseline, several output sizes in one
process) freed blocks fragment the heap and the peak grows: the whole-image generator at 1024² went over an
address-space cap that it fits without the setting. It suits one-shot runs of one output size (the bundles leave it
off by default), not long-lived servers.

The setting is process-wide and lasts until the process ends; it is the same as starting Python with
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set. Other C libraries (musl, macOS, Windows) are left as
they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

__all__ = ["keep_freed_host_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_MAX_MMAP_THRESHOLD = 2**31 - 1  # mallopt takes an int; glibc caps the mmap threshold at HEAP_MAX/2 anyway
_applied = False


def keep_freed_host_memory(threshold_bytes: int = _MAX_MMAP_THRESHOLD) -> bool:
    """Make glibc keep freed blocks below ``threshold_bytes`` for reuse (see the module's docstring).

    Args:
        threshold_bytes: allocations up to this size come from the heap and stay there once freed.

    Returns:
        True when the setting is in effect (now or from an earlier call), False where the C library is not glibc
        or refused it.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        value = ctypes.c_int(int(min(threshold_bytes, _MAX_MMAP_THRESHOLD)))
        ok = libc.mallopt(_M_MMAP_THRESHOLD, value) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, value) == 1
    except (OSError, AttributeError):
        return False
    if ok:
        _applied = True
        logging.getLogger(__name__).debug("glibc keeps freed blocks up to %d bytes for reuse", value.value)
    return ok
