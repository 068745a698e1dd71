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
"""Cost of the privacy audit against the number of training images: index time and memory, time per check.

Training images are random smooth fields (every patch structured, as in real anatomy, so nothing is skipped), at
2D 512² / 3D 96³; the audit's cost does not depend on their content. Single-threaded unless told otherwise.

    OMP_NUM_THREADS=1 python benchmarks/privacy_cost.py --dims 2 --sizes 100 1000 \\
        --output benchmarks/results/privacy_cost_2d.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from monai_msgan.data.io import write_json
from monai_msgan.privacy import PrivacyAudit
from monai_msgan.utils.atomic import check_writable


class SmoothFields:
    """A lazy sequence of random smooth images (noise upsampled from a 16-px lattice)."""

    def __init__(self, n: int, dims: int, size: int, seed: int = 0) -> None:
        self.n, self.dims, self.size, self.seed = n, dims, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        coarse = torch.randn(1, 1, *([self.size // 16] * self.dims), generator=g)
        mode = "bilinear" if self.dims == 2 else "trilinear"
        return F.interpolate(coarse, size=[self.size] * self.dims, mode=mode, align_corners=False)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--checks", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.output:
        check_writable(args.output, overwrite=False)
    image_size = 512 if args.dims == 2 else 96
    rows = []
    for n in args.sizes:
        start = time.perf_counter()
        audit = PrivacyAudit(SmoothFields(n, args.dims, image_size), thresholds={"global": 0.02, "local": 0.02})
        index_s = time.perf_counter() - start
        candidates = SmoothFields(args.checks, args.dims, image_size, seed=1)
        start = time.perf_counter()
        for i in range(args.checks):
            audit.check(candidates[i])
        check_s = (time.perf_counter() - start) / args.checks
        row = {
            "spatial_dims": args.dims,
            "image_size": image_size,
            "num_training": n,
            "index_seconds": round(index_s, 2),
            "index_megabytes": round(audit.index_bytes() / 2**20, 1),
            "index_patches": int(audit.summary()["index_patches"]),
            "check_seconds": round(check_s, 3),
            "threads": torch.get_num_threads(),
        }
        print(json.dumps(row))
        rows.append(row)
    if args.output:
        write_json(rows, args.output)


if __name__ == "__main__":
    main()
