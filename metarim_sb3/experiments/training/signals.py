"""SIGINT / SIGTERM during a run or a grid: the first asks to stop cleanly, a second SIGINT aborts at once."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(on_stop: Callable[[], None], message: str) -> Iterator[None]:
    """
    While inside, the first SIGINT or SIGTERM prints ``message`` and calls ``on_stop`` (which should make the
    work stop at its next safe point); a second SIGINT raises ``KeyboardInterrupt``. Outside the main thread
    (where handlers cannot be set) nothing is installed.

    :param on_stop: called once, at the first signal.
    :param message: printed to stderr after the signal's name.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        stopping = True
        print(f"\n{signal.Signals(signum).name}: {message}", file=sys.stderr, flush=True)
        on_stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
