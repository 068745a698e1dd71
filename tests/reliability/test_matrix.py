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
"""docs/reliability.md lists every case of this suite, and only those, with the right count."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

HERE = Path(__file__).parent


def _case_ids_in_tests() -> list[str]:
    ids = []
    for f in sorted(HERE.glob("test_*.py")):
        text = f.read_text()
        ids += re.findall(r'id="([A-Z]\d{2})-', text)
        ids += [m.upper() for m in re.findall(r"^def test_([a-z]\d{2})_", text, flags=re.M)]
    return ids


def test_docs_list_every_case():
    ids = _case_ids_in_tests()
    assert len(ids) == len(set(ids)), "a case id is used twice"
    doc = (REPO_ROOT / "docs" / "reliability.md").read_text()
    listed = re.findall(r"^\| ([A-Z]\d{2}) \|", doc, flags=re.M)
    assert sorted(listed) == sorted(ids)
    count = re.search(r"\*\*(\d+) cases\*\*", doc)
    assert count and int(count[1]) == len(ids) >= 40
