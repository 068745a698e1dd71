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
"""The benchmark commands run, measure what they claim, and report out-of-memory sizes instead of crashing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks"


def _quality_ablation():
    """benchmarks/quality_ablation.py as a module (its rows and tasks), without leaving benchmarks/ on sys.path."""
    sys.path.insert(0, str(BENCH))
    try:
        import quality_ablation
    finally:
        sys.path.remove(str(BENCH))
    return quality_ablation


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_generation_memory_compares_methods_and_reports_out_of_memory(tmp_path):
    out = tmp_path / "gen.json"
    proc = _run(
        "generation_memory.py", "--quick", "--methods", "ours", "whole", "--sizes", "512", "1024", "2048",
        "--output_buffer", "memory", "--memory_limit_gib", "3", "--output", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    rows = {(r["method"], r["size"]): r for r in result["rows"]}
    assert rows["ours", 512]["status"] == "too small"  # the quick model needs 1024 (scale 1 >= one 64 patch)
    assert rows["ours", 1024]["status"] == rows["ours", 2048]["status"] == "ok"
    assert rows["whole", 512]["status"] == rows["whole", 1024]["status"] == "ok"
    assert rows["whole", 2048]["status"] == "out of memory"  # a 2048^2 U-Net pass needs more than 3 GiB
    ours, whole = rows["ours", 2048]["rss_bytes_per_added_pixel"], rows["whole", 1024]["rss_bytes_per_added_pixel"]
    assert 0 < ours < 64 < whole  # host buffers vs whole-image activations
    assert result["versions"]["torch"] and result["command"].endswith(str(out))
    assert Image.open(out.with_suffix(".png")).size[0] > 500
    assert "out of memory" in proc.stdout
    again = subprocess.run(
        [sys.executable, str(BENCH / "generation_memory.py"), "--sizes", "1024", "--output", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and "--overwrite" in again.stderr  # an existing result is kept


@pytest.mark.slow
def test_training_memory_measures_each_scale(tmp_path):
    out = tmp_path / "train.json"
    _run("training_memory.py", "--quick", "--scales", "0", "5", "--iterations", "1", "--output", str(out))
    result = json.loads(out.read_text())
    assert [r["scale"] for r in result["rows"]] == [0, 5]
    assert all(r["status"] == "ok" and r["peak_rss_bytes"] > 100 * 2**20 for r in result["rows"])
    assert result["image_size"] == [2048, 2048] and result["num_scales"] == 6
    assert Image.open(out.with_suffix(".png")).size[0] > 400


@pytest.mark.slow
def test_training_speed_times_each_scale_of_both_bundles(tmp_path):
    out = tmp_path / "speed.json"
    tiny = ["--quick", "--device", "cpu", "--warmup", "1", "--iterations", "2", "--output", str(out)]
    sizes = ["image_size=[64,64]", "num_scales=2", "patch_size=[16,16]", "batch_size=2"]
    proc = _run("training_speed.py", *tiny, "--bundles", "xray_msgan_2d", "--set", *sizes)
    result = json.loads(out.read_text())
    rows = result["bundles"][0]["rows"]
    assert [r["scale"] for r in rows] == [0, 1] and all(r["status"] == "ok" for r in rows)
    assert all(0 < r["iterations_per_s"] < 1000 and r["peak_rss_bytes"] > 100 * 2**20 for r in rows)
    assert rows[0]["input_size"] == [32, 32] and rows[1]["input_size"] == [16, 16]
    assert rows[1]["patches_per_batch"] == 2 * 2  # batch_size 2, quick.json's patches_per_image 2
    assert result["overrides"]["image_size"] == [64, 64] and result["versions"]["monai"]
    assert "it/s" in proc.stdout and result["command"].endswith(
        str(out) + " --bundles xray_msgan_2d --set " + " ".join(sizes)
    )
    again = subprocess.run(
        [sys.executable, str(BENCH / "training_speed.py"), "--output", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 1 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_channels_last_compares_both_layouts_scale_by_scale(tmp_path):
    out = tmp_path / "layout.json"
    tiny = ["--quick", "--device", "cpu", "--warmup", "1", "--iterations", "2", "--repeats", "2", "--output", str(out)]
    sizes = ["image_size=[64,64,64]", "num_scales=2", "patch_size=[16,16,16]", "batch_size=1"]
    proc = _run("channels_last.py", *tiny, "--bundles", "ct_msgan_3d", "--set", *sizes)
    result = json.loads(out.read_text())
    rows = result["bundles"][0]["rows"]
    assert [r["scale"] for r in rows] == [0, 1] and result["repeats"] == 2
    for r in rows:
        assert len(r["contiguous_iterations_per_s"]) == len(r["channels_last_iterations_per_s"]) == 2
        assert all(0 < v < 1000 for v in r["contiguous_iterations_per_s"] + r["channels_last_iterations_per_s"])
        assert r["ratio"] == pytest.approx(r["channels_last_median"] / r["contiguous_median"])
    assert "ratio" in proc.stdout and result["versions"]["torch"]
    refused = subprocess.run(
        [
            sys.executable,
            str(BENCH / "channels_last.py"),
            "--output",
            str(tmp_path / "x.json"),
            "--set",
            "channels_last=true",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "sets the layout itself" in refused.stderr


@pytest.mark.slow
def test_training_speed_revisions_measures_a_git_revision_against_the_working_tree(tmp_path):
    out = tmp_path / "revisions.json"
    tiny = ["--quick", "--device", "cpu", "--warmup", "1", "--iterations", "2", "--repeats", "2", "--output", str(out)]
    sizes = ["image_size=[64,64,64]", "num_scales=2", "patch_size=[16,16,16]", "batch_size=1"]
    proc = _run("training_speed_revisions.py", "--baseline", "HEAD", *tiny, "--set", *sizes)
    result = json.loads(out.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    assert result["baseline"]["commit"] == head == result["working_tree"]["head"]
    assert [(r["bundle"], r["scale"]) for r in result["rows"]] == [("ct_msgan_3d", 0), ("ct_msgan_3d", 1)]
    for r in result["rows"]:
        assert len(r["baseline_iterations_per_s"]) == len(r["working_tree_iterations_per_s"]) == 2
        assert r["ratio"] == pytest.approx(r["working_tree_median"] / r["baseline_median"])
    assert "ratio" in proc.stdout and result["versions"]["torch"]
    refused = subprocess.run(
        [sys.executable, str(BENCH / "training_speed_revisions.py"), "--baseline", "no-such-revision",
         "--output", str(tmp_path / "x.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0 and "is not a commit" in refused.stderr


def test_training_curve_reads_the_logged_values():
    """The training-progress benchmark keeps each scale's logged augmentation probability and losses, so that a GPU
    run tells an augmentation at its cap or a diverging discriminator from a generator collapsing on its own."""
    sys.path.insert(0, str(BENCH))
    try:
        from training_progress import training_curve
    finally:
        sys.path.remove(str(BENCH))
    lines = ["2026-12-01 02:19:44,270 - monai_msgan - INFO - training scale 0 of 0..3 for 40 iterations"]
    for i in range(1, 101):
        lines.append(f"2026-12-01 - INFO - Epoch: 1/1, Iter: {10 * i}/1000 -- augment_p: {i / 125:.4f} loss_d: 1e-3 ")
    curve = training_curve("\n".join(lines), max_points=10)
    assert len(curve) == 10 and curve[0] == {"iteration": 10, "augment_p": 0.008, "loss_d": 0.001}
    assert curve[-1] == {"iteration": 1000, "augment_p": 0.8, "loss_d": 0.001}  # the last one is always kept
    assert [c["iteration"] for c in curve] == sorted({c["iteration"] for c in curve})
    assert training_curve("no training here") == []


def test_real_diversity_splits_the_real_figure_by_group(demo_dataset, tmp_path):
    """On the real demo images (the radiograph and three DRRs of one CT), the DRRs are far more alike than the
    radiograph is to any of them; blurring makes every pair more alike; the overall figure lies between."""
    out = tmp_path / "div.json"
    size = ["--set", "image_size=[256,256]", "num_scales=2"]
    _run("real_diversity.py", "--dataset_dir", str(demo_dataset), *size, "--group", "drr", "--blur_sizes", "32",
         "--blur_factors", "8", "--output", str(out))  # fmt: skip
    result = json.loads(out.read_text())
    assert len(result["groups"]["drr"]) == 3 and len(result["groups"]["other"]) == 1
    loaded, blurred, by_factor = result["rows"]
    assert loaded["drr vs other"] < loaded["all pairs"] < loaded["within drr"] <= 1.0
    assert loaded["within other"] is None  # one image: no pair
    assert all(blurred[k] > loaded[k] for k in ("all pairs", "within drr", "drr vs other"))
    # 256 / 8 = 32: the same blur as via size 32
    assert by_factor["images"] == "blurred by 8x" and by_factor["all pairs"] == pytest.approx(blurred["all pairs"])
    assert "ms-ssim" in result["metric"] and result["command"].endswith(str(out))


def test_quality_ablation_rows_override_real_config_ids():
    """Every option a quality-ablation row sets is an id of the bundle's train.json (a typo would silently do
    nothing), and every row that reuses another row's model names an existing row."""
    qa = _quality_ablation()
    assert qa.ROWS["full + CT windows"]["tasks"] == ["ct", "ct3"]  # the X-ray bundle has no HU windows
    assert qa.TASKS["ct3"]["overrides"] == qa.TASKS["ct"]["overrides"]  # the ct task with more patients, same sizes
    for task_name, task in qa.TASKS.items():
        configs = REPO_ROOT / "bundles" / task["bundle"] / "configs"
        ids = set(json.loads((configs / "train.json").read_text()))
        sampling_ids = set(json.loads((configs / "inference.json").read_text()))
        assert set(task["overrides"]) <= ids
        for name, row in qa.ROWS.items():
            assert set(row.get("tasks", qa.TASKS)) <= set(qa.TASKS), name
            if task_name not in row.get("tasks", qa.TASKS):
                continue
            source = row.get("sample_of") or row.get("base_of")
            assert source is None or source in qa.ROWS, name
            assert set(row.get("sample_set", {})) <= sampling_ids, name
            assert not row.get("sample_set") or row.get("sample_of"), f"row {name!r} samples without a source row"
            unknown = set(row.get("set", {})) - ids
            assert not unknown, f"row {name!r} sets unknown ids {unknown}"
            for layer in row.get("layers", []):
                assert (REPO_ROOT / "bundles" / task["bundle"] / "configs" / layer).is_file()


def test_diverse_recipe_layer_is_the_measured_row():
    """configs/recipe_diverse.json is what the quality ablation measured as '+ augmentation + diversity term'."""
    qa = _quality_ablation()
    configs = REPO_ROOT / "bundles" / "xray_msgan_2d" / "configs"
    row = qa.ROWS["+ augmentation + diversity term"]
    measured = {}
    for layer in row["layers"]:
        measured.update(json.loads((configs / layer).read_text()))
    measured.update(row["set"])
    assert json.loads((configs / "recipe_diverse.json").read_text()) == measured


def test_ct_default_augmentation_is_the_measured_row():
    """The CT bundle's train.json trains its discriminators with the augmentation that run 17 of the quality ablation
    measured with three seeds as 'full + base D 3 layers, no intensity augmentation'."""
    qa = _quality_ablation()
    row = qa.ROWS["full + base D 3 layers, no intensity augmentation"]
    train = json.loads((REPO_ROOT / "bundles" / "ct_msgan_3d" / "configs" / "train.json").read_text())
    assert not row["layers"] and set(row["set"]) == {"base_disc_layers", "augment"}
    assert train["augment"] == row["set"]["augment"]


def test_ct_diverse_recipe_layer_is_the_measured_row():
    """The CT bundle's configs/recipe_diverse.json is what run 14 of the quality ablation measured with three seeds as
    'full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9', less the task's three-layer base
    discriminator, which only gives the ablation's 48x48x16 base the whole-base view that the bundle's own base
    discriminators have (checked in tests/bundles/test_bundle_configs.py). The layer sets the discriminators'
    augmentation itself (with the intensity operation, train.json's when run 14 measured it; CT 0.7.0 dropped it)."""
    qa = _quality_ablation()
    row = qa.ROWS["full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9"]
    measured = {k: v for k, v in row["set"].items() if k != "base_disc_layers"}
    assert not row["layers"] and row["set"]["base_disc_layers"] == 3
    configs = REPO_ROOT / "bundles" / "ct_msgan_3d" / "configs"
    assert json.loads((configs / "recipe_diverse.json").read_text()) == measured


def test_intensity_strength_rows_change_only_the_strength():
    """Run 18's rows differ from the rows they are compared with (the CT layer, train.json's default) only in the
    intensity operation's strength, and every bundle trains at the strength of the rows named after it."""
    qa = _quality_ablation()
    layer_name = "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9"
    layer = qa.ROWS[layer_name]["set"]
    for name, strength in (("light", (0.025, 0.05)), ("half", (0.125, 0.25))):
        row = qa.ROWS[f"{layer_name}, {name} intensity augmentation"]
        extra = {k: v for k, v in row["set"].items() if k not in ("augment_brightness", "augment_contrast")}
        assert extra == layer and (row["set"]["augment_brightness"], row["set"]["augment_contrast"]) == strength
    default = qa.ROWS["full + base D 3 layers, light intensity augmentation"]["set"]
    assert default["augment"] == ["translation", "cutout", "intensity"]
    assert (default["augment_brightness"], default["augment_contrast"]) == (0.025, 0.05)
    for bundle in ("ct_msgan_3d", "xray_msgan_2d"):
        train = json.loads((REPO_ROOT / "bundles" / bundle / "configs" / "train.json").read_text())
        assert (train["augment_brightness"], train["augment_contrast"]) == (0.25, 0.5)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--panel_suffix", "/../x", "'/../x'"),
        ("--base_snapshots", "-100", "must be >= 0 (0 = none), got -100"),
        ("--num_eval_samples", "1", "must be 0 (the task's default) or >= 2, got 1"),
    ],
)
def test_quality_ablation_refuses_a_bad_option_before_any_work(tmp_path, option, value, message):
    """--panel_suffix becomes part of file names in benchmarks/results: a path or odd characters are refused before
    anything trains or is written; so are a negative snapshot interval and a single evaluation sample."""
    out = tmp_path / "qa.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "quality_ablation.py"), "--tasks", "ct3", "--rows", "full recipe"]
        + [option, value, "--work_dir", str(tmp_path / "work"), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert option in proc.stderr and message in proc.stderr
    assert not out.exists() and not (tmp_path / "work").exists()
