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
"""``synthesize`` killed with SIGKILL and run again, and split over processes: the same files as one clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import pytest

from tests.conftest import REPO_ROOT
from tests.synthesis.test_synthesize import CT, TINY_3D, bundle_env, run_ok, sha256, synthesize_cmd, tiny_checkpoints

N = 10
ARGS = ["--num_samples", str(N), "--seed", "5", "--privacy_audit", "false"]


@pytest.fixture(scope="module")
def ct_ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoints(CT, TINY_3D, tmp_path_factory.mktemp("ct_ckpt"))


@pytest.fixture(scope="module")
def reference(ct_ckpt, tmp_path_factory) -> Path:
    """The dataset made by one uninterrupted run."""
    out = tmp_path_factory.mktemp("one_run") / "synthetic"
    run_ok(synthesize_cmd(CT, TINY_3D, ct_ckpt, out, *ARGS))
    return out


def _files(out: Path) -> dict[int, dict]:
    """Each sample's files with their checksums, as listed by the merged manifest and checked on disk."""
    samples = json.loads((out / "manifest.json").read_text())["samples"]
    files = {s["index"]: s["files"] for s in samples}
    assert sorted(files) == list(range(N))  # every sample once
    for listed in files.values():
        for rel, info in listed.items():
            assert sha256(out / rel) == info["sha256"]
            assert nib.load(out / rel).shape == (64, 64, 32)
    return files


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for d in ("images", "previews") for p in (out / d).iterdir() if p.name.startswith("."))


def test_kill_9_half_way_then_the_same_command_completes_the_set(tmp_path, ct_ckpt, reference):
    out = tmp_path / "synthetic"
    cmd = synthesize_cmd(CT, TINY_3D, ct_ckpt, out, *ARGS)
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=bundle_env())
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list((out / "images").glob("ct_*.json"))) >= 3:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = sorted(int(p.stem[3:]) for p in (out / "images").glob("ct_*.json"))
    assert 3 <= len(done) < N, f"killed after {len(done)} samples; {(tmp_path / 'log.txt').read_text()[-2000:]}"
    assert not (out / "datalist.json").exists()
    # what a kill in the middle of writing leaves behind: temporary files of the next sample
    nxt = max(done) + 1
    (out / "images" / f".ct_{nxt:05d}.nii.gz.x8k2.tmp.nii.gz").write_bytes(b"half a volume")
    (out / "previews" / f".ct_{nxt:05d}.png.q3z9.tmp.png").write_bytes(b"half a preview")

    proc = run_ok(cmd)
    assert f"{len(done)} already on disk, {N - len(done)} to make" in proc.stdout
    assert _hidden(out) == []
    files = _files(out)
    assert files == _files(reference)  # byte for byte what one clean run makes
    datalist = json.loads((out / "datalist.json").read_text())["training"]
    assert [d["image"] for d in datalist] == [f"images/ct_{i:05d}.nii.gz" for i in range(N)]


def test_two_shards_in_separate_processes_make_the_files_of_one_run(tmp_path, ct_ckpt, reference):
    out = tmp_path / "synthetic"
    cmd = synthesize_cmd(CT, TINY_3D, ct_ckpt, out, *ARGS)
    procs = [
        subprocess.Popen([*cmd, "--shard", "[0,2]"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                         stderr=subprocess.STDOUT, env=bundle_env()),
        subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, stderr=subprocess.STDOUT,
                         env=bundle_env(RANK="1", WORLD_SIZE="2")),  # as torchrun sets them
    ]  # fmt: skip
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert "shard 0 of 2: 5 samples" in logs[0] and "shard 1 of 2: 5 samples" in logs[1]
    assert any("merged 10 samples" in log for log in logs)  # whichever finished last merged
    assert _files(out) == _files(reference)
    assert (out / "datalist.json").read_text() == (reference / "datalist.json").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(s["shard"] for s in manifest["dataset"]["shards"]) == [[0, 2], [1, 2]]
    assert [s["seed"] for s in manifest["samples"]] == list(range(5, 5 + N))
