"""Progress over weighted steps, so a bar advances inside long stages.

A stage announces each step before starting it; the bar shows the share of the planned work
already done (steps weighted by their rough cost), so a terminal's time-remaining estimate
follows the real work rather than sitting at one percentage for minutes.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "Steps"]

Progress = Callable[[str, float], None]


class Steps:
    """Report ``progress(label, fraction)`` as weighted steps start.

    Parameters
    ----------
    progress : callable or None
        The stage's progress callback (nothing is reported when None).
    total : float
        Sum of the weights of every planned step.
    start, end : float
        The share of the whole bar these steps cover.

    Examples
    --------
    >>> seen = []
    >>> steps = Steps(lambda label, f: seen.append((label, round(f, 2))), total=4, start=0.2)
    >>> steps("fit", 3); steps("score", 1); steps.done("done")
    >>> seen
    [('fit', 0.2), ('score', 0.8), ('done', 1.0)]
    """

    def __init__(self, progress: Progress | None, total: float, start: float = 0.0,
                 end: float = 1.0) -> None:
        self._progress = progress
        self._total = max(float(total), 1e-9)
        self._start, self._end = start, end
        self._done = 0.0
        self._pending = 0.0

    @property
    def fraction(self) -> float:
        """Share of the bar reached so far."""
        share = min(self._done / self._total, 1.0)
        return self._start + (self._end - self._start) * share

    def __call__(self, label: str, weight: float = 1.0) -> None:
        """A step of ``weight`` starts (the previous one is done)."""
        self._done += self._pending
        self._pending = max(float(weight), 0.0)
        if self._progress is not None:
            self._progress(label, self.fraction)

    def done(self, label: str = "done") -> None:
        """The last step finished: report the end of this range."""
        self._done = self._total
        self._pending = 0.0
        if self._progress is not None:
            self._progress(label, self._end)
