"""The README's "Report usage from your servers" examples run as written against a real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "docs" / "examples" / "report_usage.py"


def section() -> str:
    return README.split("## Report usage from your servers", 1)[1].split("\n## ", 1)[0]


def test_the_readme_shows_the_example_file_as_it_is():
    shown = re.search(r"```python\n(.*?)```", section(), re.S).group(1)
    assert shown.strip() in EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_the_python_example_runs_as_written(api):
    env = dict(os.environ, METERDESK_URL=api.server.base, METERDESK_API_KEY=api.keys["rw"])
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    entry_id, duplicate, charged, balance = done.stdout.splitlines()[0].split()
    assert (duplicate, charged, balance) == ("False", "None", "None")  # acme is postpaid
    assert done.stdout.splitlines()[1].endswith(" EUR")


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_the_curl_examples_run_as_written(api):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    commands = re.findall(r"```sh\n(.*?)```", section(), re.S)[1]
    env = dict(os.environ, METERDESK_URL=api.server.base, METERDESK_API_KEY=api.keys["rw"])
    before = api.entries("acme")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    answers = done.stdout
    assert '"duplicate":false' in answers and '"customer":"acme"' in answers and '"mode":"invoice"' in answers
    assert api.entries("acme") == before + 1
    again = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], capture_output=True, text=True, env=env, timeout=60)
    assert '"duplicate":true' in again.stdout and api.entries("acme") == before + 1
