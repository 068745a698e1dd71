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

from monai_msgan.utils.atomic import (
    Terminated,
    atomic_path,
    atomic_write,
    check_writable,
    remove_stale_temporaries,
    signals_raise,
    staged_folder,
)
from monai_msgan.utils.checkpoints import (
    CheckpointIntegrityError,
    NonFiniteError,
    checkpoint_path,
    generator_path,
    load_weights,
    save_weights,
    scale_dir,
)
from monai_msgan.utils.distributed import (
    destroy_distributed,
    distributed_device,
    gather_to_first,
    init_distributed,
    rank_and_world,
    rank_barrier,
    unwrap,
)
from monai_msgan.utils.flags import ensure_bool
from monai_msgan.utils.host_memory import keep_freed_host_memory
from monai_msgan.utils.memory_format import channels_last_format, module_to_channels_last, to_channels_last
from monai_msgan.utils.scales import SCALE_FACTOR, ensure_size, scale_sizes
from monai_msgan.utils.validation import ConfigurationError, ensure_int, ensure_number

__all__ = [
    "SCALE_FACTOR",
    "CheckpointIntegrityError",
    "ConfigurationError",
    "NonFiniteError",
    "Terminated",
    "ensure_int",
    "ensure_number",
    "remove_stale_temporaries",
    "signals_raise",
    "staged_folder",
    "atomic_path",
    "atomic_write",
    "channels_last_format",
    "check_writable",
    "checkpoint_path",
    "destroy_distributed",
    "distributed_device",
    "ensure_bool",
    "ensure_size",
    "gather_to_first",
    "generator_path",
    "init_distributed",
    "keep_freed_host_memory",
    "load_weights",
    "module_to_channels_last",
    "rank_and_world",
    "rank_barrier",
    "save_weights",
    "scale_dir",
    "scale_sizes",
    "to_channels_last",
    "unwrap",
]
