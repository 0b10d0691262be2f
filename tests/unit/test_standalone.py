"""The repository stands alone (issue 14, item 13): what its tests read lives in it.

HubSpot's OpenAPI descriptions are test fixtures (tests/fixtures/hubspot-openapi/, source and
hashes in its README); nothing may read them from beside the checkout any more.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "hubspot-openapi"
# Code that could read files: the package, the local stack, benchmarks, build tools, tests.
CODE_DIRS = ("shared", "infra", "tests", "functions", "layers")
OUTSIDE_COPY = re.compile(
    r"""\.\./shared/hubspot-openapi|["']shared["']\s*/\s*["']hubspot-openapi""")


def test_the_openapi_fixtures_are_the_files_their_readme_names():
    readme = (FIXTURES / "README.md").read_text()
    listed = dict(re.findall(r"\| `([\w.-]+\.json)` \|[^|]*\| `([0-9a-f]{64})` \|", readme))
    present = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
               for path in FIXTURES.glob("*.json")}
    assert listed == present
    assert {"crm-contacts-v3.json", "crm-properties-v3.json", "webhooks-v3.json"} <= set(present)


def test_no_code_reads_the_openapi_files_from_beside_the_checkout():
    readers = [str(path.relative_to(ROOT)) for folder in CODE_DIRS
               for path in (ROOT / folder).rglob("*.py")
               if ".aws-sam" not in path.parts and OUTSIDE_COPY.search(path.read_text())]
    assert readers == []
