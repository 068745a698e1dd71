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
"""The product's promise, checked where a GPU exists: the default configurations train and generate inside 12 GiB.

Runs the benchmark commands with ``--cuda_cap_gib 12`` (``torch.cuda.set_per_process_memory_fraction``), so an
allocation beyond 12 GiB fails as it would on a 12 GB card. Skips without CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
CAP = 12 * 2**30


def _bench(script: str, tmp_path, *args: str) -> dict:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--device", "cuda", "--cuda_cap_gib", "12"]
    proc = subprocess.run([*cmd, *args, "--output", str(out)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("bundle", ["xray_msgan_2d", "ct_msgan_3d"])
def test_default_configuration_trains_every_scale_within_12_gib(bundle, tmp_path):
    result = _bench("training_memory.py", tmp_path, "--bundle", bundle, "--iterations", "2")
    for row in result["rows"]:
        assert row["status"] == "ok", row
        assert 0 < row["cuda_peak_bytes"] <= CAP


@pytest.mark.parametrize("bundle,sizes", [("xray_msgan_2d", ["2048", "4096"]), ("ct_msgan_3d", ["512"])])
def test_default_configuration_generates_within_12_gib(bundle, sizes, tmp_path):
    result = _bench("generation_memory.py", tmp_path, "--bundle", bundle, "--sizes", *sizes)
    for row in result["rows"]:
        assert row["status"] == "ok", row
        assert 0 < row["cuda_peak_bytes"] <= CAP
