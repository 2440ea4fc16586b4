"""Interface tier: a Ctrl-C stops ``invlend compare`` cleanly mid-simulation.

The command runs in a subprocess (:func:`commands.interruptible` restores SIGINT's default
action, which a background test run would inherit ignored) and is interrupted once its
progress bar shows; it must end with ``invlend: interrupted``, status 130, no traceback and
no partial report. Interrupts at other moments (the imports, a pipe) are in
``test_cli_hardening.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from commands import interruptible

# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "invlend.cli", "compare", "--portfolios", "60000", "--size",
         "100", "--progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=interruptible,
    )  # fmt: skip
    # Interrupt once the simulation has started: its progress bar is on standard error.
    seen = b""
    deadline = time.monotonic() + 120
    while b"simulating" not in seen and time.monotonic() < deadline:
        chunk = proc.stderr.read1(256)
        if not chunk:
            break
        seen += chunk
    assert b"simulating" in seen, seen
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    stderr = (seen + rest).decode()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.strip().splitlines()[-1].endswith("invlend: interrupted")
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()], "no partial report"
