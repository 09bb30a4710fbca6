"""The progress bar of a training loop: steps of its epochs, or seconds of its wall-clock budget.

A budgeted run normally stops long before its epochs are done (a 10-minute budget against an epoch cap of
1000), so a bar over steps would show an ETA of days. Under a budget the bar counts the budget's seconds
instead, and its ETA is the time left in the budget (or less, when the epochs end first).
"""
from __future__ import annotations

from tqdm.auto import tqdm

_BUDGET_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of budget [{elapsed}<{remaining}{postfix}]"


class TrainingBar:
    """A tqdm bar over ``total_steps`` steps, or over ``max_seconds`` seconds of training when that is given.

    Args:
        total_steps: steps of the whole run (all epochs, all phases).
        done_steps: steps already done (a resumed run).
        max_seconds: the run's wall-clock budget in seconds, or ``None``.
        elapsed: seconds of training already spent (a resumed run).
        progress: show the bar at all.
        description: the bar's label.
    """

    def __init__(self, total_steps: int, done_steps: int, max_seconds: float | None, elapsed: float, *,
                 progress: bool, description: str):
        self.max_seconds = max_seconds
        if max_seconds is None:
            self._bar = tqdm(total=total_steps, initial=done_steps, disable=not progress, desc=description,
                             unit="step", dynamic_ncols=True)
        else:
            self._bar = tqdm(total=float(max_seconds), initial=min(float(elapsed), max_seconds),
                             disable=not progress, desc=description, bar_format=_BUDGET_FORMAT, dynamic_ncols=True)

    def step(self, elapsed: float) -> None:
        """One training step is done; ``elapsed`` is the run's training seconds so far."""
        if self.max_seconds is None:
            self._bar.update(1)
        else:
            self._bar.update(max(0.0, min(elapsed, self.max_seconds) - self._bar.n))

    def set_postfix(self, **values) -> None:
        self._bar.set_postfix(**values)

    def close(self) -> None:
        self._bar.close()
