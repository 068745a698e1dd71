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
"""The bundles' commands under bad input, run the way a user runs them (``python -m monai.bundle run``)."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser

from monai_msgan.utils import generator_path, save_weights
from tests.bundles.run import run_bundle
from tests.conftest import REPO_ROOT

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"
CONFIGS = BUNDLE / "configs"
TINY = {"image_size": [256, 256], "num_scales": 3, "patch_size": [32, 32]}
TINY_ARGS = [a for k, v in TINY.items() for a in (f"--{k}", json.dumps(v).replace(" ", ""))]


@pytest.fixture(scope="module")
def bundle_models(tmp_path_factory):
    """generator.pt of every scale of the quick configuration at TINY sizes (random weights, saved as training does)."""
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(CONFIGS / "quick.json")])
    parser.update(TINY)
    torch.manual_seed(0)
    model = parser.get_parsed_content("network_def")
    ckpt = tmp_path_factory.mktemp("bundle_models")
    for s in range(model.num_scales):
        save_weights(model.scale(s).state_dict(), generator_path(ckpt, s))
    return ckpt


def _overwrite_middle(path):
    state = torch.load(path, weights_only=True)
    largest = max(state.values(), key=lambda t: t.numel() if isinstance(t, torch.Tensor) else 0)
    data = bytearray(path.read_bytes())
    at = data.find(largest.numpy().tobytes()) + largest.numel() * largest.element_size() // 2
    data[at : at + 8] = bytes(8)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage,match",
    [
        pytest.param(_overwrite_middle, "(scale 1) is damaged: the SHA-256", id="B01-generator-bytes-overwritten"),
        pytest.param(
            lambda p: p.write_bytes(p.read_bytes()[:-500]), "(scale 1) as a weights-only", id="B02-generator-truncated"
        ),
    ],
)
def test_inference_with_a_damaged_generator_writes_nothing(bundle_models, tmp_path, damage, match):
    import shutil

    models = shutil.copytree(bundle_models, tmp_path / "models")
    path = generator_path(models, 1)
    damage(path)
    out = tmp_path / "out"
    proc = run_bundle(BUNDLE, "inference", ["inference.json", "quick.json"], *TINY_ARGS,
                      "--ckpt_dir", str(models), "--output_dir", str(out))  # fmt: skip
    assert proc.returncode != 0
    assert f"{path} {match}" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists() or not list(out.iterdir())


def test_b03_training_seed_must_be_an_integer(tmp_path):
    proc = run_bundle(BUNDLE, "training", ["train.json", "quick.json"], *TINY_ARGS, "--seed", "1.5",
                      "--ckpt_dir", str(tmp_path / "ckpt"), "--dataset_dir", str(tmp_path))  # fmt: skip
    assert proc.returncode != 0 and "option seed must be an integer, got 1.5" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "ckpt").exists()


def test_b04_impossible_configuration_is_refused_before_training(xrays, tmp_path):
    from monai_msgan.data import prepare_xrays

    dataset = tmp_path / "data"
    prepare_xrays([xrays], dataset)
    args = ["--image_size", "[256,256]", "--num_scales", "3", "--num_iterations", "[2,2,2]"]
    args += ["--patch_size", "[160,160]", "--batch_size", "0"]
    proc = run_bundle(BUNDLE, "training", ["train.json", "quick.json"], *args,
                      "--ckpt_dir", str(tmp_path / "ckpt"), "--dataset_dir", str(dataset))  # fmt: skip
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "the training configuration has 2 problem(s); nothing was started" in proc.stderr, proc.stderr[-2000:]
    assert "patch_size [160, 160] is larger than scale 1 ([128, 128]" in proc.stderr
    assert "option batch_size must be an integer >= 1, got 0" in proc.stderr
    assert not (tmp_path / "ckpt").exists()


def test_b05_missing_config_key_is_named():
    parser = ConfigParser()
    config = json.loads((CONFIGS / "inference.json").read_text())
    del config["ckpt_dir"]
    parser.read_config(config)
    with pytest.raises(ValueError, match="ckpt_dir"):
        parser.get_parsed_content("initialize")
