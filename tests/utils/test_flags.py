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

from __future__ import annotations

import numpy as np
import pytest

from monai_msgan.synthesis import MultiScaleSynthesizer, SampleGeneration
from monai_msgan.utils import ensure_bool
from tests.synthesis.test_synthesizer import _trained_like


def test_command_line_words_mean_what_they_say():
    for word in ("true", "True", "1", "yes"):
        assert ensure_bool(word, "x") is True
    for word in ("false", "False", "0", "no", "null"):
        assert ensure_bool(word, "x") is False
    assert ensure_bool(True, "x") is True and ensure_bool(0, "x") is False
    with pytest.raises(ValueError, match="overwrite must be true or false, got 'maybe'"):
        ensure_bool("maybe", "overwrite")


def test_overwrite_false_as_text_keeps_existing_outputs(tmp_path):
    (tmp_path / "sample_000.png").write_bytes(b"keep")
    synth = MultiScaleSynthesizer(_trained_like(2), 32, device="cpu")
    with pytest.raises(FileExistsError):
        SampleGeneration(synth, (128, 128), tmp_path, np.eye(4), overwrite="false").run()
    assert (tmp_path / "sample_000.png").read_bytes() == b"keep"
