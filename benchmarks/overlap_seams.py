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
"""Seam score and redundant compute of window overlaps and blending modes, with trained generators.

The first ``--num_scales`` scales of a trained bundle model generate images at ``2**(num_scales - 1)`` times the
base size; for each overlap and blending mode the seam score (:func:`~monai_msgan.metrics.seam_score`, about 1 =
no visible grid) of the finest scale's window grid is averaged over ``--samples`` seeds, and the redundancy (how
many times the windows compute each pixel, over the generated patch scales) is reported. Small sizes run on a CPU
in a minute or two, e.g. with the X-ray demo (``make demo``)::

    python benchmarks/overlap_seams.py --ckpt_dir outputs/xray_demo/models --quick --num_scales 4

Without ``--ckpt_dir`` the patch generators get random weights with strong residuals, whose windows show their
borders (zero padding) clearly: the stricter test of blending when trained residuals are still small.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import BUNDLES, REPO, command, machine, refuse_existing, write_result  # noqa: E402


def build(bundle: Path, quick: bool, num_scales: int, ckpt_dir: str):
    from monai.bundle import ConfigParser

    files = [str(bundle / "configs" / n) for n in ["inference.json"] + (["quick.json"] if quick else [])]
    parser = ConfigParser()
    parser.read_config(files)
    parser["bundle_root"] = str(bundle)
    trained = int(parser["num_scales"])
    base = [s // 2 ** (trained - 1) for s in parser.get_parsed_content("image_size")]
    parser["num_scales"] = num_scales
    model = parser.get_parsed_content("network_def")
    if ckpt_dir:
        model.load_checkpoints(ckpt_dir, scales=num_scales)
    else:  # random patch generators with strong residuals: the windows' borders show unless they are blended away
        torch.manual_seed(0)
        for w in model.patches.parameters():
            torch.nn.init.normal_(w, std=0.05)
    return model, tuple(parser.get_parsed_content("patch_size")), [b * 2 ** (num_scales - 1) for b in base]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", choices=BUNDLES, default=BUNDLES[0])
    p.add_argument(
        "--ckpt_dir",
        default=None,
        help="trained checkpoints (scale_<s>/generator.pt); default: random "
        "patch generators (normal weights, std 0.05) whose window borders are visible without blending",
    )
    p.add_argument("--quick", action="store_true", help="layer quick.json (the demo model)")
    p.add_argument("--num_scales", type=int, default=4, help="use the first this many scales (small outputs)")
    p.add_argument("--overlaps", type=float, nargs="+", default=[0.25, 0.125, 0.0])
    p.add_argument("--modes", nargs="+", default=["gaussian", "constant"])
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--output", default=None, help="JSON (default: benchmarks/results/<bundle>_overlap_seams.json)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args()
    from monai_msgan.metrics.seams import seam_score
    from monai_msgan.synthesis import MultiScaleSynthesizer
    from monai_msgan.synthesis.assembly import redundancy

    bundle = REPO / "bundles" / args.bundle
    output = Path(args.output or REPO / "benchmarks" / "results" / f"{args.bundle}_overlap_seams.json")
    if refuse_existing(output, args.overwrite):
        return 1
    model, patch, size = build(bundle, args.quick, args.num_scales, args.ckpt_dir)
    rows = []
    for mode in args.modes:
        for overlap in args.overlaps:
            synth = MultiScaleSynthesizer(model, patch, overlap=overlap, mode=mode, device="cpu")
            scores = [seam_score(synth(size, seed=seed), patch, overlap) for seed in range(args.samples)]
            sizes = synth.scale_sizes(size)[1:]
            pixels = [math.prod(s) for s in sizes]
            red = sum(redundancy(s, patch, overlap) * n for s, n in zip(sizes, pixels)) / sum(pixels)
            rows.append({"mode": mode, "overlap": overlap, "seam_score": sum(scores) / len(scores),
                         "seam_scores": scores, "redundancy": red,
                         "finest_redundancy": redundancy(sizes[-1], patch, overlap)})  # fmt: skip
            r = rows[-1]
            print(f"{mode:>9} overlap {overlap:<6} seam {r['seam_score']:.3f}  redundancy {red:.2f} "
                  f"(finest {r['finest_redundancy']:.2f})", flush=True)  # fmt: skip
    write_result(
        {"benchmark": "overlap_seams", "command": command(), "bundle": args.bundle, "quick": args.quick,
         "ckpt_dir": args.ckpt_dir, "num_scales": args.num_scales, "output_size": list(size),
         "patch_size": list(patch),          **machine("cpu"), "rows": rows},
        output, overwrite=True,
    )  # fmt: skip
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
