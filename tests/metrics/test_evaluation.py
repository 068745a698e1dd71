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

import pytest
from PIL import Image

from tests.bundles.run import ok, run_bundle
from tests.conftest import REPO_ROOT

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"
TINY = ["--image_size", "[256,256]", "--num_scales", "3", "--patch_size", "[32,32]"]


@pytest.mark.slow
def test_evaluate_config_writes_metrics_and_panel(demo_dataset, tmp_path):
    ckpt = tmp_path / "models"
    ok(run_bundle(BUNDLE, "training", ["train.json", "quick.json"], "--dataset_dir", str(demo_dataset),
                  "--ckpt_dir", str(ckpt), "--log_dir", str(tmp_path / "logs"), *TINY,
                  "--num_iterations", "[2,2,2]", "--batch_size", "2"))  # fmt: skip
    out = tmp_path / "eval"
    args = ["--ckpt_dir", str(ckpt), "--dataset_dir", str(demo_dataset), "--eval_output_dir", str(out), *TINY]
    ok(run_bundle(BUNDLE, "evaluating", ["inference.json", "evaluate.json", "quick.json"], *args))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_real"] == 1 and metrics["num_generated"] == 4 and metrics["image_size"] == [256, 256]
    assert len(metrics["swd_x1e3_per_level"]) == 4 and all(v > 0 for v in metrics["swd_x1e3_per_level"])
    assert metrics["seam_score_generated"] > 0 and metrics["seam_score_real"] > 0
    assert metrics["diversity"]["metric"] == "ms-ssim" and metrics["diversity"]["pairs"] == 6
    assert Image.open(out / "panel.png").size[1] == 256
    proc = run_bundle(BUNDLE, "evaluating", ["inference.json", "evaluate.json", "quick.json"], *args)
    assert proc.returncode != 0 and "metrics.json already exists" in proc.stderr
