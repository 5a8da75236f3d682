"""Run `meterdesk` as another program would: a subprocess with $METERDESK_DB, reading stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


class Cli:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, input: str | None = None) -> Run:
        env = dict(os.environ, METERDESK_DB=self.url, METERDESK_ACTOR="cli-tests")
        done = subprocess.run(
            [sys.executable, "-m", "meterdesk", *args], capture_output=True, text=True, env=env, input=input, timeout=120
        )
        return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(ledger_url):
    return Cli(ledger_url)
