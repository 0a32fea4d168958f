"""What the harness's servers share about the processes they run."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM, as a service manager stops a server; SIGKILL if it has not gone in ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
