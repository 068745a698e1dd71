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
"""Running a bundle's command the way a user does: ``python -m monai.bundle run ...`` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def run_bundle(
    bundle: Path, run_id: str, configs: list[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``run_id`` of ``bundle`` with ``configs`` (file names in its configs/ folder, layered) from the repo root;
    ``env`` adds environment variables."""
    config_file = "[" + ",".join(f"'{bundle / 'configs' / c}'" for c in configs) + "]"
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        run_id,
        "--config_file",
        config_file,
        "--bundle_root",
        str(bundle),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.run([*cmd, *args], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert success, showing the end of the output otherwise."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc
