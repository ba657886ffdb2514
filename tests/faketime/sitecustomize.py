"""Loaded only for the clock-shifted CI runs (PYTHONPATH=tests/faketime, under Debian's `faketime`).

libfaketime moves the wall clock for the whole process; the monotonic clock is left real
(FAKETIME_DONT_FAKE_MONOTONIC=1) so that thread waits keep working. But CPython's `time.sleep`
waits with an absolute monotonic deadline (clock_nanosleep with TIMER_ABSTIME), which
libfaketime shifts by the fake offset and the kernel then refuses (EINVAL). A sleep made of
relative `select` timeouts measures the same real time and is left alone.
"""

import os
import select
import time

if os.environ.get("FAKETIME") and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        while True:
            left = deadline - _monotonic()
            if left <= 0:
                return
            select.select([], [], [], left)

    time.sleep = _sleep
