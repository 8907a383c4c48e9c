"""The README's quick start, run as a newcomer runs it: pasted into a shell in a fresh copy of
the repository, with nothing installed beforehand."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT


def quickstart_block(readme: str) -> str:
    """The first ```bash block between the README's quickstart section markers."""
    section = re.search(
        r"<!-- section: quickstart[^>]*-->(.*?)<!-- /section: quickstart -->", readme, re.S
    )
    assert section, "README.md has no quickstart section"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, "the quickstart section has no bash block"
    return block.group(1)


def fresh_copy(target: Path) -> Path:
    """The files a clone would have: tracked ones and new ones not ignored (not .venv, build,
    caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # (a file deleted but not yet committed is listed too)
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_quickstart_block_names_the_venv_and_waits_before_listing():
    """What a pasted block needs, checked without running it: the installed command is
    reachable, nothing needs a Makefile, and the list comes after a wait."""
    block = quickstart_block((ROOT / "README.md").read_text())
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    assert ". .venv/bin/activate" in lines[0] and "pip install" in lines[0]
    assert "make " not in block
    waits = [n for n, line in enumerate(lines) if line.startswith("queuectl-tui wait")]
    listing = [n for n, line in enumerate(lines) if line.startswith("queuectl-tui list")]
    assert waits and listing and waits[0] < listing[0]


@pytest.mark.slow
def test_quickstart_runs_as_written_in_a_fresh_clone(tmp_path):
    """Every command of the block exits 0 (bash -e), in a copy of the repository with a venv
    of its own and a QUEUECTL_HOME of its own, and the list shows the jobs completed."""
    clone = fresh_copy(tmp_path / "queuectl-tui")
    home = tmp_path / "home"
    block = quickstart_block((ROOT / "README.md").read_text())
    script = (
        "set -eo pipefail\ntrap 'echo \"FAILED ($?): $BASH_COMMAND\" >&2' ERR\n"
        + block
        + "echo QUICKSTART-DONE\n"
    )
    # No venv of the test run on PATH: the block must find its own commands.
    base = os.path.dirname(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QUEUECTL_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(QUEUECTL_HOME=str(home), PATH=f"{base}:/usr/local/bin:/usr/bin:/bin")
    try:
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
    finally:  # the block stops its workers; should it fail half-way, they go here
        subprocess.run(
            [str(clone / ".venv" / "bin" / "queuectl-tui"), "worker", "stop", "--force"],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.rstrip().endswith("QUICKSTART-DONE"), out[-2000:]
    first_id = out.splitlines()[0]
    assert re.fullmatch(r"[0-9a-f]{12}", first_id), out[:500]
    after = out[out.index("id\tlabel\tstate") :].splitlines()  # list --state completed
    header, rows = after[0].split("\t"), []
    for line in after[1:]:
        if line.count("\t") != len(header) - 1:
            break  # the next command's output
        rows.append(dict(zip(header, line.split("\t"), strict=True)))
    assert {(row["id"], row["state"]) for row in rows} == {
        (first_id, "completed"),
        ("job1", "completed"),
        ("report", "completed"),
    }, after
    assert "hello from job1" in out
    assert (clone / ".venv" / "bin" / "qctl").exists()  # the short name, installed beside it
