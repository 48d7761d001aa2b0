"""Pull progress for every command that may pull a model (`rag models pull`, `index --pull`, `ask --pull`)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

from ingest.walk import human_size
from rag.models_types import PullProgress


class PullReporter:
    """Pull progress on stderr: one tqdm bar per layer on a terminal, plain lines otherwise.

    Callable with each `PullProgress`, so it doubles as the ``progress`` of `ensure_models`.
    """

    def __init__(self, out: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.bars: dict[str, tqdm[Any]] = {}
        self.last_status = ""
        self.last_step: dict[str, int] = {}
        self.started: dict[str, tuple[float, int]] = {}

    def __call__(self, part: PullProgress) -> None:
        if part.digest and part.total:
            self._layer(part)
        elif part.status != self.last_status:
            self._line(part.status)
        self.last_status = part.status

    def _layer(self, part: PullProgress) -> None:
        done, total = part.completed or 0, part.total or 0
        if self.tty:
            bar = self.bars.get(part.digest)
            if bar is None:
                desc = f"pulling {part.digest.removeprefix('sha256:')[:12]}"
                bar = tqdm(
                    desc=desc, total=total, unit="B", unit_scale=True, unit_divisor=1000, file=self.out
                )
                self.bars[part.digest] = bar
            bar.update(done - bar.n)
            return
        # Plain lines: one per 25% per layer keeps logs readable, with bytes and the speed so far.
        step = 100 * done // total // 25
        if self.last_step.get(part.digest) == step:
            return
        self.last_step[part.digest] = step
        start, first = self.started.setdefault(part.digest, (time.monotonic(), done))
        elapsed = time.monotonic() - start
        speed = f", {human_size((done - first) / elapsed)}/s" if elapsed > 0 and done > first else ""
        short = part.digest.removeprefix("sha256:")[:12]
        self._line(f"pulling {short}: {human_size(done)} / {human_size(total)} ({100 * done // total}%{speed})")

    def _line(self, text: str) -> None:
        if text:
            (tqdm.write(text, file=self.out) if self.bars else self.out.write(text + "\n"))
            self.out.flush()

    def close(self) -> None:
        """Finish every progress bar."""
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
