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
"""Data: reading X-rays, demo data, DRR rendering, datalists and writing outputs."""

from __future__ import annotations

from monai_msgan.data.ct import (
    DEFAULT_HU_WINDOW,
    HU_AIR,
    CTVolume,
    find_ct_volumes,
    prepare_cts,
    read_ct_volume,
    read_dicom_series,
    standardise_ct,
)
from monai_msgan.data.datalist import load_datalist
from monai_msgan.data.demo import (
    demo_ct_labels_path,
    demo_ct_path,
    demo_ct_paths,
    demo_radiograph_path,
    prepare_demo_ct,
    prepare_demo_xray,
    render_demo_drrs,
)
from monai_msgan.data.drr import load_ct_ras, render_drr
from monai_msgan.data.public_ct import PYRADIOMICS_SDIST, fetch_pyradiomics_cts
from monai_msgan.data.labels import (
    BODY_LABEL,
    CT_LABEL_CLASSES,
    DEMO_CT_LABEL_MAPPING,
    ct_structure_class,
    label_class_names,
    label_condition_files,
    prepare_ct_label_map,
    read_structures,
)
from monai_msgan.data.io import (
    preview_plane,
    radiograph_affine,
    read_json,
    volume_affine,
    save_nifti,
    save_png_preview,
    write_json,
)
from monai_msgan.data.xray import XRayImage, find_images, normalise_intensity, prepare_xrays, read_xray, write_radiograph

__all__ = [
    "BODY_LABEL",
    "CT_LABEL_CLASSES",
    "DEMO_CT_LABEL_MAPPING",
    "ct_structure_class",
    "label_class_names",
    "label_condition_files",
    "prepare_ct_label_map",
    "prepare_demo_ct",
    "read_structures",
    "CTVolume",
    "DEFAULT_HU_WINDOW",
    "HU_AIR",
    "find_ct_volumes",
    "prepare_cts",
    "read_ct_volume",
    "read_dicom_series",
    "standardise_ct",
    "XRayImage",
    "demo_ct_labels_path",
    "demo_ct_path",
    "demo_ct_paths",
    "fetch_pyradiomics_cts",
    "PYRADIOMICS_SDIST",
    "demo_radiograph_path",
    "find_images",
    "load_ct_ras",
    "load_datalist",
    "normalise_intensity",
    "prepare_demo_xray",
    "prepare_xrays",
    "preview_plane",
    "radiograph_affine",
    "read_json",
    "read_xray",
    "render_demo_drrs",
    "render_drr",
    "save_nifti",
    "save_png_preview",
    "write_json",
    "volume_affine",
    "write_radiograph",
]
