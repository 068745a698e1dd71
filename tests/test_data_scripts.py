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

import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / "data_scripts"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=300)


def test_prepare_xray_errors_name_the_input(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _run("prepare_xray.py", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "empty: the folder holds no" in proc.stderr
    (tmp_path / "broken.dcm").write_bytes(b"DICM" * 50)
    proc = _run("prepare_xray.py", "--input", str(tmp_path / "broken.dcm"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "broken.dcm: cannot read DICOM" in proc.stderr
    assert not (tmp_path / "out" / "datalist.json").exists()


def test_prepare_xray_from_png_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "pngs").mkdir()
    for i in range(3):
        Image.fromarray((rng.random((40, 30)) * 60000).astype(np.uint16)).save(tmp_path / "pngs" / f"x{i}.png")
    proc = _run("prepare_xray.py", "--input", str(tmp_path / "pngs"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "2 training and 1 validation" in proc.stdout


def test_render_drr_cli(tmp_path):
    proc = _run("render_drr.py", "--output", str(tmp_path), "--angles", "0", "12.5")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drr_+0deg.nii.gz", "drr_+12p5deg.nii.gz"]
