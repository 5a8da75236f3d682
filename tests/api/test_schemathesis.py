"""schemathesis against the served OpenAPI document: no 5xx for any generated request, every response as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_generated_requests_get_documented_answers_and_never_a_server_error(api, tmp_path):
    runner = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert runner, "schemathesis is in the test extra"
    # The seeded customer in every path and query parameter that names one, so generated requests reach the
    # summary, listing and balance code instead of stopping at 404 (unknown customers are in test_contract.py).
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.id" = "acme"\n"query.customer" = "bolt"\n', encoding="utf-8")
    before = api.server.process.poll()
    done = subprocess.run(
        [runner, "--config-file", str(config), "run", api.server.base + "/v1/openapi.json",
         "--header", f"Authorization: Bearer {api.keys['rw']}",
         "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", "20", "--seed", "22", "--no-color", "--request-timeout", "20"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert before is None and api.server.process.poll() is None
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
