"""The battery-sim command against the real local stack (emulator + functions),
with its own built-in receiver taking the callbacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local.stack import Stack, free_port
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_stack():
    port = free_port()
    with Stack.on_free_ports(job_manager_url=f"http://127.0.0.1:{port}") as stack:
        yield stack, port


def run_cli(stack, port, *args, timeout=300):
    cmd = [str(Path(sys.executable).with_name("battery-sim")), "submit", *args,
           "--url", stack.submit_url, "--listen", f"127.0.0.1:{port}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_sweep_prints_a_row_per_member_saves_results_and_plots(cli_stack, tmp_path):
    stack, port = cli_stack
    done = run_cli(stack, port, str(REPO / "examples" / "sweep_c_rate_temperature.json"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "9/9 done" in done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("#")]
    assert len(rows) == 9 and all("succeeded" in r for r in rows)
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("job,sweep index,Time [s],Voltage [V]")
    assert len(csv_lines) > 9 * 50
    png = tmp_path / "plot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000


def test_a_failed_job_makes_the_command_exit_non_zero(cli_stack, tmp_path):
    stack, port = cli_stack
    job = tmp_path / "bad.json"
    job.write_text('{"simulationType": "cell", "upperVoltage": 3.0, "lowerVoltage": 2.9}')
    done = run_cli(stack, port, str(job), "--out", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed" in done.stdout and "cut-offs" in done.stdout
    # the whole error under the table, and no empty plot
    (body,) = json.loads((tmp_path / "results.json").read_text())
    assert len(body["error"]) > 48 and f"{body['id']}: failed: {' '.join(body['error'].split())}" in done.stdout
    assert "no plot: no job has a series to draw" in done.stdout and not (tmp_path / "plot.png").exists()


def test_an_invalid_job_is_reported_with_its_field(cli_stack, tmp_path):
    stack, port = cli_stack
    job = tmp_path / "invalid.json"
    job.write_text('{"protocol": {"type": "constant_current", "c_rate": 99}}')
    done = run_cli(stack, port, str(job), "--out", str(tmp_path))
    assert done.returncode == 2
    assert "protocol.c_rate" in done.stderr
