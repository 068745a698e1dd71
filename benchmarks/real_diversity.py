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
"""How diverse the real images of a dataset are, and where that diversity comes from.

The sample-diversity figure of ``evaluate.json`` (mean MS-SSIM, or SSIM for small 3D images, between pairs) is
compared with the same figure among the real images. This script takes that real figure apart: over all the images
(training and validation, loaded through the bundle's own ``preprocessing``, as the evaluation loads them), within
each group of file names (``--group drr``), between the groups, and after the images have gone through a coarse
resolution (``--blur_sizes``: average-pooled to that size and upsampled back, as blurred as a generator whose detail
comes only from a base of that size; ``--blur_factors``: pooled by that factor along every axis, for images that are
not square or cubic). It tells what a diversity goal asks of a generator: e.g. on the X-ray demo
data nearly all of the real diversity is the one real radiograph against eight DRRs of one CT.

    python benchmarks/real_diversity.py --bundle xray_msgan_2d --dataset_dir data/xray_demo \\
        --overrides bundles/xray_msgan_2d/configs/quick.json --set "image_size=[512,512]" --group drr \\
        --blur_sizes 128 64 --output benchmarks/results/real_diversity_xray.json
    python benchmarks/real_diversity.py --bundle ct_msgan_3d --dataset_dir outputs/quality_ablation_run10/ct3/data \\
        --overrides bundles/ct_msgan_3d/configs/quick.json \\
        --set "image_size=[96,96,32]" "spacing=[4.0,4.0,4.0]" "num_scales=2" "patch_size=[32,32,32]" \\
        --group slab lung1 lung2 --blur_factors 2 --output benchmarks/results/real_diversity_ct3.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import REPO, command, machine, parse_overrides, refuse_existing, write_result  # noqa: E402


def _load(bundle: Path, dataset_dir: str, overrides: list[str], values: dict) -> list[tuple[str, torch.Tensor]]:
    """Every training and validation image of the datalist, preprocessed as ``evaluate.json`` does, in [0, 1]."""
    from monai.bundle import ConfigParser

    from monai_msgan.data import load_datalist
    from monai_msgan.metrics.evaluation import _to_unit

    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / "inference.json"), *overrides])
    parser["bundle_root"] = str(bundle)
    parser["dataset_dir"] = str(Path(dataset_dir).resolve())
    for key, v in values.items():
        parser[key] = v
    preprocessing = parser.get_parsed_content("preprocessing")
    image_key = parser.get("image_key", "image")
    images = []
    for split in ("training", "validation"):
        for item in load_datalist(parser["dataset_dir"], split, allow_empty=True):
            x = _to_unit(torch.as_tensor(preprocessing(item)[image_key]))
            images.append((Path(str(item[image_key])).name, x))
    return images


def _mean_similarity(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float | None:
    from monai_msgan.metrics.similarity import pairwise_diversity

    if not pairs:
        return None
    # pairwise_diversity scores consecutive pairs of its own; score the listed pairs one by one instead
    values = [pairwise_diversity(torch.stack([a, b]))["mean"] for a, b in pairs]
    return float(sum(values) / len(values))


def _blurred(x: torch.Tensor, size: int | None = None, factor: int | None = None) -> torch.Tensor:
    """``x`` (channel-first) area-downsampled to ``size`` on every side, or by ``factor`` along every axis (a
    generator's base ``2**(num_scales - 1)`` times smaller, whatever the image's shape), and upsampled back."""
    nd = x.ndim - 1
    mode = "bilinear" if nd == 2 else "trilinear"
    small_size = [size] * nd if size is not None else [max(1, int(n) // int(factor)) for n in x.shape[1:]]
    small = F.interpolate(x[None], size=small_size, mode="area")
    return F.interpolate(small, size=list(x.shape[1:]), mode=mode, align_corners=False)[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="xray_msgan_2d")
    p.add_argument("--dataset_dir", required=True)
    p.add_argument("--overrides", nargs="*", default=[], help="extra config layers after inference.json")
    p.add_argument("--set", nargs="*", default=[], metavar="ID=JSON", help="config ids to override")
    p.add_argument("--group", nargs="*", default=[], help="file-name substrings that define groups of images")
    p.add_argument("--blur_sizes", nargs="*", type=int, default=[], help="also score the images blurred via this size")
    p.add_argument(
        "--blur_factors",
        nargs="*",
        type=int,
        default=[],
        help="also score the images blurred by this factor along every axis (e.g. 2 ** (num_scales - 1): a base's "
        "resolution, for images that are not square or cubic)",
    )
    p.add_argument("--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    out = Path(a.output)
    if refuse_existing(out, a.overwrite):
        return 1
    values = parse_overrides(a.set)
    images = _load(REPO / "bundles" / a.bundle, a.dataset_dir, [str(Path(o).resolve()) for o in a.overrides], values)
    if len(images) < 2:
        p.error(f"{a.dataset_dir}: need at least two images, found {len(images)}.")
    names = [n for n, _ in images]
    groups = {g: [i for i, n in enumerate(names) if g in n] for g in a.group}
    groups["other"] = [i for i in range(len(names)) if not any(i in m for m in groups.values())]
    rows = []

    def score(label: str, tensors: list[torch.Tensor]) -> None:
        every = list(itertools.combinations(range(len(tensors)), 2))
        row = {"images": label, "all pairs": _mean_similarity([(tensors[i], tensors[j]) for i, j in every])}
        for g, members in groups.items():
            within = [(tensors[i], tensors[j]) for i, j in itertools.combinations(members, 2)]
            row[f"within {g}"] = _mean_similarity(within)
        for (g, m), (h, n) in itertools.combinations(groups.items(), 2):
            row[f"{g} vs {h}"] = _mean_similarity([(tensors[i], tensors[j]) for i in m for j in n])
        rows.append(row)

    tensors = [x for _, x in images]
    score("as loaded", tensors)
    for s in a.blur_sizes:
        score(f"blurred via {s}", [_blurred(x, size=s) for x in tensors])
    for f in a.blur_factors:
        score(f"blurred by {f}x", [_blurred(x, factor=f) for x in tensors])
    metric = "ms-ssim" if min(tensors[0].shape[1:]) > 160 else "ssim"
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n| " + " | ".join("---" for _ in keys) + " |")
    for r in rows:
        cells = [v if isinstance(v, str) else "-" if v is None else f"{v:.3f}" for v in r.values()]
        print("| " + " | ".join(cells) + " |")
    result = {
        "benchmark": "real_diversity",
        "command": command(),
        **machine("cpu"),
        "metric": f"mean {metric} between pairs (higher = more alike)",
        "images": names,
        "groups": {g: [names[i] for i in m] for g, m in groups.items()},
        "rows": rows,
    }
    write_result(result, out, overwrite=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
