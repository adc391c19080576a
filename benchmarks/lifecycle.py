"""What a run starts beside the load (servers, relays, samplers) is stopped when its block ends."""

from __future__ import annotations

import signal
import subprocess
from typing import TypeVar

_Started = TypeVar("_Started", bound="Started")


class Started:
    """A ``with`` block around something running: :meth:`start` on entry, :meth:`stop` on exit.

    :meth:`stop` also runs when :meth:`start` fails half way, so a process that started but
    never became ready is not left behind.
    """

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Started) -> _Started:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` is still running after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
