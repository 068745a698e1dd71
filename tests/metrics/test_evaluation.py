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
import torch
from monai.transforms import Compose, EnsureTyped

from monai_msgan.metrics import GenerationEvaluation
from monai_msgan.synthesis import MultiScaleSynthesizer
from monai_msgan.transforms import EdgeMapd
from tests.synthesis.test_synthesizer import _trained_like


def _held_out(n=2, size=(128, 128)):
    g = torch.Generator().manual_seed(0)
    pool = torch.nn.functional.avg_pool2d
    return [{"image": pool(torch.rand(1, *size, generator=g), 9, 1, 4) * 2 - 1} for _ in range(n)]


def test_conditional_evaluation_pairs_samples_with_their_real_images(tmp_path):
    model = _trained_like(2, condition_channels=1)
    for p in model.patches.parameters():
        p.data.mul_(0.05)
    synth = MultiScaleSynthesizer(model, 32, device="cpu")
    prep = Compose([EnsureTyped("image", track_meta=False), EdgeMapd("image", "condition")])
    result = GenerationEvaluation(synth, _held_out(), prep, tmp_path, num_samples=2, condition_key="condition").run()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert result["conditional"] and result["num_real"] == 2 and result["num_generated"] == 4
    fid = result["paired_fidelity"]
    assert -1 <= fid["ssim"] < 1 and fid["psnr"] > 0 and 0 < fid["mae"] < 1  # generated, not a copy of the real
    assert result["diversity"]["pairs"] == 2  # one pair per condition
    assert result["synthesis"]["num_scales"] == 3 and result["synthesis"]["patch_size"] == [32, 32]
    assert (tmp_path / "panel.png").stat().st_size > 0
    with pytest.raises(FileExistsError):
        GenerationEvaluation(synth, _held_out(), prep, tmp_path, num_samples=1, condition_key="condition").run()


def test_unconditional_evaluation_measures_fidelity_to_every_real_image(tmp_path):
    synth = MultiScaleSynthesizer(_trained_like(2), 32, device="cpu")
    held, refs = _held_out(1), _held_out(4)[1:] + [{"image": torch.zeros(1, 96, 96)}]  # the 96x96 one is skipped
    ev = GenerationEvaluation(synth, held, EnsureTyped("image"), tmp_path, num_samples=2, reference_files=refs)
    result = ev.run()
    assert result["num_real"] == 1 and result["num_real_all"] == 4
    assert len(result["swd_all_real_x1e3_per_level"]) == len(result["swd_x1e3_per_level"])
    assert result["swd_all_real_x1e3_mean"] > 0 and result["swd_all_real_x1e3_mean"] != result["swd_x1e3_mean"]
    assert result["diversity_real"]["pairs"] == 6  # 4 real images of the held-out size
    from PIL import Image

    sheet = Image.open(tmp_path / "samples.png")  # both 128x128 samples side by side, a padded row of four
    assert sheet.size == (4 * 132, 132)
    alone = GenerationEvaluation(synth, held, EnsureTyped("image"), tmp_path / "alone", num_samples=2).run()
    assert "swd_all_real_x1e3_mean" not in alone and "diversity_real" not in alone
    assert alone["swd_x1e3_mean"] == result["swd_x1e3_mean"]


def test_unconditional_evaluation_needs_pairs_and_a_condition_when_asked(tmp_path):
    synth = MultiScaleSynthesizer(_trained_like(2), 32, device="cpu")
    with pytest.raises(ValueError, match="at least 2"):
        GenerationEvaluation(synth, _held_out(), EnsureTyped("image"), tmp_path, num_samples=1)
    ev = GenerationEvaluation(synth, _held_out(), EnsureTyped("image"), tmp_path, num_samples=1, condition_key="edges")
    with pytest.raises(ValueError, match="made no condition 'edges'"):
        ev.run()


def test_ct_evaluation_reports_air_and_body_outline_in_hu(tmp_path):
    # held out: a box-shaped body of soft tissue in air ([-1024, 1000] HU window of the model range)
    real = torch.full((1, 64, 64, 32), -1.0)
    real[:, 16:48, 12:52] = 0.0
    synth = MultiScaleSynthesizer(_trained_like(3, num_scales=2), 16, device="cpu")
    ev = GenerationEvaluation(
        synth, [{"image": real}], EnsureTyped("image"), tmp_path, num_samples=2, intensity_range=[-1024.0, 1000.0]
    )
    intensity = ev.run()["intensity"]
    assert intensity["units"] == "HU"
    assert intensity["outside_body_air"]["real"] == 1.0
    per_sample = intensity["outside_body_air"]["generated_per_sample"]
    assert len(per_sample) == 2 and all(0.0 <= v <= 1.0 for v in per_sample)
    assert intensity["outside_body_air"]["generated"] == pytest.approx(sum(per_sample) / 2, abs=1e-4)
    assert intensity["body_solidity"]["real"] == 1.0  # the box is its own hull
    assert 0.0 <= intensity["body_solidity"]["generated"] <= 1.0
