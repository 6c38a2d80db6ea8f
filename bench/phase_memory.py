"""Peak resident memory per phase of a run, from /proc/self/status (Linux).

`PhaseMemory.enter(label)` closes the current phase with its peak RSS (VmHWM, the kernel's own
high-water mark) and resets the mark (`/proc/self/clear_refs` <- 5) for the next one, so each
phase's peak is its own. Where the reset is not allowed, the peak is the running maximum of
VmRSS sampled every 20 ms by a thread (a sampled peak can miss a spike shorter than that).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PhaseMemory:
    """Peak RSS (MiB) of each named phase, in the order they ran."""

    def __init__(self) -> None:
        self.phases: list[dict[str, object]] = []
        self._label: str | None = None
        self._started = 0.0
        self._sampled = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._can_reset = self._reset()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _reset() -> bool:
        try:
            _CLEAR_REFS.write_text("5")
            return True
        except OSError:
            return False

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            rss = _status_kib("VmRSS")
            with self._lock:
                self._sampled = max(self._sampled, rss)

    def enter(self, label: str) -> None:
        """End the current phase (if any) and start `label`."""
        now = time.perf_counter()
        with self._lock:
            if self._label is not None:
                peak = _status_kib("VmHWM") if self._can_reset else self._sampled
                self.phases.append(
                    {
                        "phase": self._label,
                        "peak_rss_mib": round(max(peak, self._sampled) / 1024),
                        "end_rss_mib": round(_status_kib("VmRSS") / 1024),
                        "seconds": round(now - self._started, 1),
                    }
                )
            self._label, self._started = label, now
            self._sampled = _status_kib("VmRSS")
            if self._can_reset:
                self._reset()

    def close(self) -> list[dict[str, object]]:
        """End the last phase; the phases measured."""
        self.enter("")
        self._label = None
        self._stop.set()
        self._thread.join()
        return self.phases

    @property
    def peak_mib(self) -> int:
        return max((int(p["peak_rss_mib"]) for p in self.phases), default=0)  # type: ignore[call-overload]
