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

import json

import numpy as np
import pytest
import torch

from monai_msgan.data.io import radiograph_affine, save_nifti, save_png_preview, write_json
from monai_msgan.privacy import PrivacyAudit
from monai_msgan.privacy.planted import disguised_copy
from monai_msgan.privacy.report import main


@pytest.fixture
def dataset(tmp_path, radiograph_tiles):
    """A datalist folder of NIfTI tiles (6 training, 2 validation) and a folder of candidates (a disguised copy of
    training tile 2, an unseen tile, and a PNG preview beside them that must not be audited)."""
    root = tmp_path / "data"
    affine = radiograph_affine([1.0, 1.0])
    tiles = radiograph_tiles["training"][:6] + radiograph_tiles["held_out"][:2]
    for i, t in enumerate(tiles):
        save_nifti(t, affine, root / "images" / f"tile_{i}.nii.gz")
    write_json(
        {
            "training": [{"image": f"images/tile_{i}.nii.gz"} for i in range(6)],
            "validation": [{"image": f"images/tile_{i}.nii.gz"} for i in (6, 7)],
        },
        root / "datalist.json",
    )
    out = tmp_path / "samples"
    save_nifti(disguised_copy(tiles[2], np.random.default_rng(0)), affine, out / "sample_000.nii.gz")
    save_nifti(radiograph_tiles["unseen"][0], affine, out / "sample_001.nii.gz")
    save_png_preview(torch.as_tensor(radiograph_tiles["unseen"][0])[None], out / "sample_001.png")
    return root, out


def test_cli_report(dataset, tmp_path):
    root, samples = dataset
    report_path = tmp_path / "report.json"
    assert main(["--training", str(root), "--candidates", str(samples), "--output", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    rows = {r["file"]: r for r in report["candidates"]}
    assert sorted(rows) == ["sample_000.nii.gz", "sample_001.nii.gz"]  # the PNG preview is not audited
    assert rows["sample_000.nii.gz"]["flagged"] and rows["sample_000.nii.gz"]["nearest_training"] == "tile_2.nii.gz"
    assert not rows["sample_001.nii.gz"]["flagged"]
    assert report["summary"]["flagged_files"] == ["sample_000.nii.gz"]
    assert report["summary"]["calibration"]["method"] == "held_out"
    assert report["summary"]["calibration"]["held_out_files"] == ["tile_6.nii.gz", "tile_7.nii.gz"]
    # never overwritten silently; --fail-on-flagged turns a flag into exit status 1
    with pytest.raises(SystemExit, match="2"):
        main(["--training", str(root), "--candidates", str(samples), "--output", str(report_path)])
    args = ["--training", str(root), "--candidates", str(samples), "--output", str(report_path), "--overwrite"]
    assert main([*args, "--fail-on-flagged"]) == 1
    # the library reads the same datalist to the same thresholds
    assert PrivacyAudit.from_datalist(root).thresholds == report["summary"]["thresholds"]


def test_cli_errors(dataset, tmp_path, capsys):
    root, samples = dataset
    (samples / "broken.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(SystemExit, match="2"):
        main(["--training", str(root), "--candidates", str(samples), "--output", str(tmp_path / "r.json")])
    assert "broken.nii.gz" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(
            [
                "--training",
                str(tmp_path / "nowhere"),
                "--candidates",
                str(samples),
                "--output",
                str(tmp_path / "r.json"),
            ]
        )
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="2"):
        main(["--training", str(root), "--candidates", str(tmp_path / "empty"), "--output", str(tmp_path / "r.json")])
    assert "holds no image" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
