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
"""Integration test of the MONAI Label app against a real ``monailabel start_server`` on 127.0.0.1.

Runs only with ``MSGAN_TEST_MONAILABEL=1`` and MONAI Label installed: ``make test-monailabel`` (which makes the app's
environment, ``.venv-monailabel``, and runs this file with it). ``make test`` skips it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("MSGAN_TEST_MONAILABEL") != "1":
    pytest.skip(
        "MONAI Label integration test: set MSGAN_TEST_MONAILABEL=1 and use the app's environment "
        "(make test-monailabel)",
        allow_module_level=True,
    )

import nibabel as nib  # noqa: E402
import requests  # noqa: E402

from tests.monailabel.conftest import (  # noqa: E402
    APP_DIR,
    CT_STUDY,
    CT_STUDY_SIZE,
    CT_UNLABELLED,
    REPO_ROOT,
    STUDY_IMAGES,
    STUDY_SIZE,
    TINY_2D,
    TINY_3D,
    make_ct_study,
    make_studies,
)

sys.path.insert(0, str(APP_DIR))
from add_model import add_model  # noqa: E402

sys.path.remove(str(APP_DIR))

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"
CT_BUNDLE = REPO_ROOT / "bundles" / "ct_msgan_3d"
SKETCHED = STUDY_IMAGES[1]  # an image with a drawn sketch (its final label)
UNLABELLED = STUDY_IMAGES[-1]  # an image without a label
START_TIMEOUT = 120
TRAIN_TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, studies: Path, model_dir: Path, log: Path) -> None:
        self.url, self.studies, self.model_dir, self.log = url, studies, model_dir, log

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=60, **kw)

    def infer(self, task: str, image: str, params: dict, label: Path | None = None) -> requests.Response:
        files = {"label": (label.name, label.read_bytes())} if label is not None else None
        return requests.post(
            f"{self.url}/infer/{task}",
            params={"image": image, "output": "image"},
            data={"params": json.dumps(params)},
            files=files,
            timeout=120,
        )

    def train(self, model: str, params: dict) -> list[str]:
        """Run a training task to its end; returns its output lines."""
        r = requests.post(f"{self.url}/train/{model}", json=params, timeout=60)
        assert r.status_code == 200, r.text
        deadline = time.time() + TRAIN_TIMEOUT
        while time.time() < deadline:
            task = self.get("/train/").json()
            if task["status"] not in ("SUBMITTED", "RUNNING"):
                break
            time.sleep(2)
        assert task["status"] == "DONE", f"training ended {task['status']}: {task.get('details')}\n{self.tail()}"
        return list(task.get("details", []))

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text()[-n:]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_dir, ct_demo_dir):
    root = tmp_path_factory.mktemp("monailabel")
    studies = make_ct_study(ct_demo_dir, make_studies(demo_dir, root / "studies"))
    model_dir = root / "model"
    add_model(BUNDLE, "xray_tiny", model_dir, ["quick.json"], TINY_2D)
    add_model(BUNDLE, "xray_sketch_tiny", model_dir, ["quick.json", "sketch.json"], TINY_2D)
    add_model(CT_BUNDLE, "ct_tiny", model_dir, ["quick.json"], TINY_3D)
    # label-map conditioning (configs/labels.json) on the study's body mask: two classes, values used as they are
    add_model(CT_BUNDLE, "ct_label_tiny", model_dir, ["quick.json"], TINY_3D, labels=True, label_classes=2)
    port = _free_port()
    log = root / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(APP_DIR), "--studies", str(studies)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--conf", "models", "all"]
    cmd += ["--conf", "model_dir", str(model_dir)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    srv = Server(f"http://127.0.0.1:{port}", studies, model_dir, log)
    try:
        deadline = time.time() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{srv.tail()}")
            try:
                if srv.get("/info/").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the server did not answer within {START_TIMEOUT} s:\n{srv.tail()}")
            time.sleep(1)
        yield srv
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _nifti(response: requests.Response, path: Path) -> nib.Nifti1Image:
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return nib.load(str(path))


def _detail(response: requests.Response) -> str:
    return str(response.json().get("detail"))


def test_info_lists_models_and_untrained_ones_fail_clearly(server):
    info = server.get("/info/").json()
    assert {"synthesize", "translate"} <= set(info["models"])
    assert set(info["trainers"]) == {"xray_tiny", "xray_sketch_tiny", "ct_tiny", "ct_label_tiny"}
    gens = info["models"]["synthesize"]["generators"]
    assert gens["xray_sketch_tiny"]["condition"] == "sketch" and gens["xray_tiny"]["condition"] == "none"
    assert gens["ct_label_tiny"]["condition"] == "label"
    for name, dims in (("xray_tiny", 2), ("xray_sketch_tiny", 2), ("ct_tiny", 3), ("ct_label_tiny", 3)):
        assert gens[name]["ready"] is False and "not trained" in gens[name]["error"]
        assert info["generators"][name]["dimension"] == dims
    r = server.infer("synthesize", SKETCHED, {"generator": "xray_tiny"})
    assert r.status_code == 409 and "not trained" in _detail(r) and "generator.pt" in _detail(r)


def test_train_writes_checkpoints_reports_progress_and_resumes(server):
    details = server.train("xray_tiny", {"device": "cpu"})
    ckpt = server.model_dir / "xray_tiny" / "models"
    assert (ckpt / "scale_0" / "generator.pt").is_file() and (ckpt / "scale_1" / "generator.pt").is_file()
    stats = server.get("/info/").json()["train_stats"]["xray_tiny"]
    assert stats["status"] == "DONE" and stats["epoch"] == stats["total_epochs"] == 12 and stats["images"] == 3
    assert any("progress: scale 1 iteration 6/6" in line for line in details)
    # resumable: more iterations continue from the saved iteration 6, not from 0
    details = server.train("xray_tiny", {"device": "cpu", "num_iterations": 8})
    progress = [line for line in details if "progress: scale 0" in line]
    assert progress and "iteration 8/8" in progress[0] and not any("iteration 2/8" in line for line in details)
    assert server.get("/info/").json()["generators"]["xray_tiny"]["ready"] is True
    server.train("xray_sketch_tiny", {"device": "cpu"})
    server.train("ct_tiny", {"device": "cpu"})  # 3D: the datastore's one labelled volume
    stats = server.get("/info/").json()["train_stats"]["ct_tiny"]
    assert stats["status"] == "DONE" and stats["images"] == 1
    assert (server.model_dir / "ct_tiny" / "models" / "scale_1" / "generator.pt").is_file()
    server.train("ct_label_tiny", {"device": "cpu"})  # conditioned on the volume's label map (its body mask)
    stats = server.get("/info/").json()["train_stats"]["ct_label_tiny"]
    assert stats["status"] == "DONE" and stats["images"] == 1


def test_synthesize_returns_nifti_in_input_geometry(server, tmp_path):
    source = nib.load(str(server.studies / f"{SKETCHED}.nii.gz"))
    images = []
    for seed in (0, 1, 0):
        r = server.infer("synthesize", SKETCHED, {"generator": "xray_tiny", "seed": seed})
        img = _nifti(r, tmp_path / "s.nii.gz")
        data = np.asarray(img.dataobj)
        assert data.shape == STUDY_SIZE and np.allclose(img.affine, source.affine, atol=1e-4)
        assert data.min() >= 0.0 and data.max() <= 1.0 and data.std() > 0.01
        images.append(data)
    assert np.abs(images[0] - images[1]).mean() > 1e-3  # seeds differ
    np.testing.assert_allclose(images[0], images[2], atol=1e-5)  # a seed gives the same sample again
    r = server.infer("synthesize", SKETCHED, {"generator": "xray_tiny", "num_samples": 3})
    img = _nifti(r, tmp_path / "m.nii.gz")
    assert img.shape == (*STUDY_SIZE, 1, 3)
    # sketch models synthesize from the image's own edge map
    img = _nifti(server.infer("synthesize", UNLABELLED, {"generator": "xray_sketch_tiny"}), tmp_path / "e.nii.gz")
    assert img.shape == STUDY_SIZE


def test_synthesize_ct_volume(server, tmp_path):
    source = nib.load(str(server.studies / f"{CT_STUDY}.nii.gz"))
    out = []
    for seed in (0, 1):
        r = server.infer("synthesize", CT_STUDY, {"generator": "ct_tiny", "seed": seed})
        img = _nifti(r, tmp_path / "c.nii.gz")
        data = np.asarray(img.dataobj)
        assert data.shape == CT_STUDY_SIZE and data.dtype == np.int16
        assert np.allclose(img.affine, source.affine, atol=1e-4)
        assert data.min() >= -1024 and data.max() <= 3071 and data.std() > 1
        out.append(data.astype(np.float32))
    assert np.abs(out[0] - out[1]).mean() > 0.5


def test_label_model_synthesizes_and_translates_label_maps(server, tmp_path):
    source = nib.load(str(server.studies / f"{CT_STUDY}.nii.gz"))
    out = {}
    for seed in (0, 1):  # synthesize: from the image's own label map (its body mask in the datastore)
        img = _nifti(
            server.infer("synthesize", CT_STUDY, {"generator": "ct_label_tiny", "seed": seed}), tmp_path / "l.nii.gz"
        )
        data = np.asarray(img.dataobj)
        assert data.shape == CT_STUDY_SIZE and data.dtype == np.int16
        assert np.allclose(img.affine, source.affine, atol=1e-4) and data.min() >= -1024 and data.max() <= 3071
        out[seed] = data.astype(np.float32)
    assert np.abs(out[0] - out[1]).mean() > 0.5
    # translate: a drawn label map (a box of "body" in the middle), uploaded; another drawing, another image
    box = np.zeros(CT_STUDY_SIZE, np.uint8)
    box[10:26, 10:26, 8:25] = 1
    drawn = tmp_path / "box.nii.gz"
    nib.save(nib.Nifti1Image(box, source.affine), str(drawn))
    r = server.infer("translate", CT_UNLABELLED, {"generator": "ct_label_tiny", "seed": 0}, label=drawn)
    boxed = np.asarray(_nifti(r, tmp_path / "t.nii.gz").dataobj).astype(np.float32)
    assert boxed.shape == CT_STUDY_SIZE and np.abs(boxed - out[0]).mean() > 0.5  # same seed, other label map
    # label values the model's label layer does not know (2 classes: 0 and 1) are refused with the transform's words
    box[12:20, 12:20, 10:20] = 3
    nib.save(nib.Nifti1Image(box, source.affine), str(drawn))
    r = server.infer("translate", CT_UNLABELLED, {"generator": "ct_label_tiny"}, label=drawn)
    assert r.status_code == 400 and "cannot use the label map" in _detail(r) and "values [3]" in _detail(r), r.text
    # an image without a label map cannot be synthesized from its label map
    r = server.infer("synthesize", CT_UNLABELLED, {"generator": "ct_label_tiny"})
    assert r.status_code == 400 and "needs a label map" in _detail(r)


def test_translate_sketch_to_image(server, tmp_path):
    out = [
        np.asarray(_nifti(server.infer("translate", SKETCHED, {"seed": s, "generator": "xray_sketch_tiny"}), p).dataobj)
        for s, p in ((3, tmp_path / "a.nii.gz"), (4, tmp_path / "b.nii.gz"))
    ]
    assert out[0].shape == STUDY_SIZE and 0.0 <= out[0].min() and out[0].max() <= 1.0
    assert np.abs(out[0] - out[1]).mean() > 1e-3
    # an image without a label: its sketch uploaded with the request
    sketch = server.studies / "labels" / "final" / f"{STUDY_IMAGES[0]}.nii.gz"
    r = server.infer("translate", UNLABELLED, {"generator": "xray_sketch_tiny"}, label=sketch)
    assert _nifti(r, tmp_path / "u.nii.gz").shape == STUDY_SIZE


@pytest.mark.parametrize(
    "task,image,params,status,words",
    [
        ("synthesize", SKETCHED, {"generator": "nope"}, 404, "unknown model 'nope'"),
        ("segment", SKETCHED, {"generator": "xray_tiny"}, 404, "unknown infer task 'segment'"),
        ("synthesize", "no_such_image", {"generator": "xray_tiny"}, 404, "no image 'no_such_image'"),
        ("synthesize", SKETCHED, {"generator": "xray_tiny", "seed": "abc"}, 400, "'seed' must be an integer"),
        ("synthesize", SKETCHED, {"generator": "xray_tiny", "seed": 1.5}, 400, "'seed' must be an integer"),
        ("synthesize", SKETCHED, {"generator": "xray_tiny", "num_samples": 9}, 400, "between 1 and 8"),
        ("synthesize", SKETCHED, {}, 400, "name a model"),
        ("translate", SKETCHED, {"generator": "xray_tiny"}, 400, "unconditional"),
        ("translate", UNLABELLED, {"generator": "xray_sketch_tiny"}, 400, "needs a sketch"),
        ("synthesize", CT_STUDY, {"generator": "xray_tiny"}, 400, "makes 2D images, but the image"),
    ],
)
def test_bad_infer_requests_get_4xx_with_a_message(server, task, image, params, status, words):
    r = server.infer(task, image, params)
    assert r.status_code == status, r.text
    assert words in _detail(r)


def test_train_unknown_model_is_refused(server):
    r = requests.post(f"{server.url}/train/nope", json={}, timeout=60)
    assert r.status_code == 404 and "unknown model 'nope'" in _detail(r)


def test_batch_action_adds_synthetic_pairs(server):
    url = f"{server.url}/batch/infer/synthesize"
    params = {"generator": "xray_sketch_tiny", "num_pairs": 3, "seed": 100, "device": "cpu"}
    r = requests.post(url, params={"images": "labeled", "run_sync": "true"}, json=params, timeout=300)
    assert r.status_code == 200, r.text
    result = r.json()
    added = result["added"]
    assert sorted(added + result["dropped"]) == [f"synthetic_xray_sketch_tiny_{s:06d}" for s in (100, 101, 102)]
    assert (
        added and result["privacy"]["num_training"] == 3 and result["privacy"]["reference"] == "model training images"
    )
    store = server.get("/datastore/", params={"output": "all"}).json()["objects"]
    for image_id in added:
        entry = store[image_id]
        assert entry["image"]["info"]["synthetic"] is True and entry["image"]["info"]["seed"] >= 100
        assert entry["labels"]["final"]["info"]["synthetic"] is True
        # the privacy audit against the model's training images: an added pair is never flagged
        privacy = entry["image"]["info"]["privacy"]
        assert privacy["flagged"] is False and privacy["num_training"] == 3
        assert privacy["global_distance"] is None or privacy["global_distance"] >= privacy["thresholds"]["global"]
        assert privacy["nearest_training"] in {f"{name}.nii.gz" for name in STUDY_IMAGES[:-1]}
        assert entry["labels"]["final"]["info"]["privacy"] == privacy
        image = nib.load(str(server.studies / f"{image_id}.nii.gz"))
        label = nib.load(str(server.studies / "labels" / "final" / f"{image_id}.nii.gz"))
        assert image.shape == label.shape == STUDY_SIZE and np.allclose(image.affine, label.affine)
    # the same seeds again would replace them: refused; so are too many pairs and unconditional models
    again = requests.post(url, params={"images": "labeled", "run_sync": "true"}, json=params, timeout=60)
    assert again.status_code == 409 and "already has" in _detail(again)
    many = requests.post(url, params={"run_sync": "true"}, json={**params, "num_pairs": 101}, timeout=60)
    assert many.status_code == 400 and "'num_pairs' must be between 1 and 100" in _detail(many)
    plain = requests.post(url, params={"run_sync": "true"}, json={**params, "generator": "xray_tiny"}, timeout=60)
    assert plain.status_code == 400 and "unconditional" in _detail(plain)


def test_batch_action_label_model_pairs(server):
    params = {"generator": "ct_label_tiny", "num_pairs": 1, "seed": 7, "device": "cpu"}
    r = requests.post(
        f"{server.url}/batch/infer/synthesize",
        params={"images": "labeled", "run_sync": "true"},
        json=params,
        timeout=300,
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] + r.json()["dropped"] == ["synthetic_ct_label_tiny_000007"]
    for image_id in r.json()["added"]:
        info = server.get("/datastore/", params={"output": "all"}).json()["objects"][image_id]["image"]["info"]
        assert info["synthetic"] is True and info["condition"] == "label" and info["privacy"]["flagged"] is False
        assert info["privacy"]["nearest_training"] == f"{CT_STUDY}.nii.gz"
        label = np.asarray(nib.load(str(server.studies / "labels" / "final" / f"{image_id}.nii.gz")).dataobj)
        source = np.asarray(nib.load(str(server.studies / "labels" / "final" / f"{CT_STUDY}.nii.gz")).dataobj)
        np.testing.assert_array_equal(label, source)  # generated from the real volume's label map
    # thresholds above every distance flag every sample: each seed is redrawn, then the pair is dropped
    strict = {**params, "seed": 8, "privacy_thresholds": {"global": 2.0, "local": 2.0}}
    r = requests.post(
        f"{server.url}/batch/infer/synthesize",
        params={"images": "labeled", "run_sync": "true"},
        json=strict,
        timeout=300,
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == [] and r.json()["dropped"] == ["synthetic_ct_label_tiny_000008"]
    assert len(set(r.json()["rejected_seeds"])) == 4 and 8 in r.json()["rejected_seeds"]
    assert "synthetic_ct_label_tiny_000008" not in server.get("/datastore/", params={"output": "all"}).json()["objects"]
    bad = {**params, "seed": 9, "privacy_thresholds": {"global": 0.1}}
    r = requests.post(f"{server.url}/batch/infer/synthesize", params={"run_sync": "true"}, json=bad, timeout=60)
    assert r.status_code == 400 and "'privacy_thresholds' must be" in _detail(r)
