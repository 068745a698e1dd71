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
"""Shared by the experiments on real held-out data (quality ablation, translation): their datasets, running bundle
commands, and the figure of labelled evaluation panels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_utils import REPO, bundle_args

__all__ = ["prepare_xray", "prepare_ct_slabs", "run", "bundle_cmd", "labelled_panels"]


def prepare_xray(data_dir: Path) -> None:
    """The 2D demo set: the real radiograph and 8 DRR views train, the DRR view at +20 degrees is held out."""
    if (data_dir / "datalist.json").is_file():
        return
    run([sys.executable, str(REPO / "data_scripts" / "fetch_demo_data.py"), "--output", str(data_dir)])


def prepare_ct_slabs(
    data_dir: Path,
    spacing: float = 2.5,
    size: int = 128,
    depth: int = 32,
    gap: int = 5,
    stride: int | None = None,
    more_patients: int = 0,
) -> None:
    """Axial slabs of the demo CT: overlapping training slabs from the lower slices and the top ``depth`` slices
    held out, at least ``gap`` slices above the highest training slab. Slabs are cropped or padded with air to
    ``size`` in-plane.

    With ``more_patients`` (a number of slabs per patient), the two more patients' chest CTs (pyradiomics' test
    cases, :func:`monai_msgan.data.demo.demo_ct_paths`) add that many training slabs each, evenly spaced over
    their whole length; the held-out slab stays the demo CT's."""
    if (data_dir / "datalist.json").is_file():
        return
    import nibabel as nib
    import numpy as np

    from monai_msgan.data import save_nifti, volume_affine
    from monai_msgan.data.demo import prepare_demo_ct
    from monai_msgan.data.io import write_json

    volume_dir = data_dir / "volume"
    if not (volume_dir / "datalist.json").is_file():
        prepare_demo_ct(volume_dir, spacing=(spacing,) * 3, more_patients=more_patients > 0)
    entries = json.loads((volume_dir / "datalist.json").read_text())["training"]
    datalist: dict[str, list] = {"training": [], "validation": []}
    affine = volume_affine((spacing,) * 3, (size, size, depth))  # every slab has the same grid
    for index, entry in enumerate(entries):
        vol = np.asarray(nib.load(volume_dir / entry["image"]).dataobj)  # RAS, int16 HU
        padded = np.full((max(size, vol.shape[0]), max(size, vol.shape[1]), vol.shape[2]), -1024, dtype=vol.dtype)
        px, py = (padded.shape[0] - vol.shape[0]) // 2, (padded.shape[1] - vol.shape[1]) // 2
        padded[px : px + vol.shape[0], py : py + vol.shape[1]] = vol
        x0, y0 = (padded.shape[0] - size) // 2, (padded.shape[1] - size) // 2
        vol = padded[x0 : x0 + size, y0 : y0 + size]
        if index == 0:  # the demo CT: training slabs below, the held-out slab on top
            held_start = vol.shape[2] - depth
            splits = [("training", range(0, held_start - gap - depth + 1, stride or depth // 2)),
                      ("validation", [held_start])]  # fmt: skip
            prefix = "slab"
        else:
            splits = [("training", np.linspace(0, vol.shape[2] - depth, more_patients).round().astype(int))]
            prefix = Path(entry["image"]).name.split(".")[0]
        for split, starts in splits:
            for z in starts:
                name = f"{prefix}_z{z:03d}.nii.gz"
                save_nifti(vol[:, :, z : z + depth], affine, data_dir / name)
                datalist[split].append({"image": name})
    write_json(datalist, data_dir / "datalist.json")


def run(cmd: list[str], log: Path | None = None) -> float:
    """Run ``cmd``, keep its output in ``log``; raise with its tail if it fails. Returns the seconds it took."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def bundle_cmd(run_id: str, bundle: Path, configs: list[str], args: dict) -> list[str]:
    """``python -m monai.bundle run <run_id>`` with the bundle's config files layered and ids overridden."""
    files = bundle_args([str(bundle / "configs" / c) for c in configs])
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, *files, "--bundle_root", str(bundle)]
    for k, v in args.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    return cmd


def labelled_panels(panels: list[tuple[str, Path]], out: Path) -> None:
    """Stack evaluation panels, each under a label line, into one PNG (written atomically)."""
    from PIL import Image, ImageDraw

    rows = []
    for label_text, path in panels:
        panel = Image.open(path).convert("L")
        label = Image.new("L", (panel.width, 18), 0)
        ImageDraw.Draw(label).text((4, 3), label_text, fill=255)
        rows += [label, panel]
    width = max(r.width for r in rows)
    canvas = Image.new("L", (width, sum(r.height for r in rows)), 0)
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    tmp = out.with_name(out.name + ".tmp.png")
    canvas.save(tmp)
    os.replace(tmp, out)
