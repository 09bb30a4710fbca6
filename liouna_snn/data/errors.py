"""The error raised when a dataset is not where it was looked for."""

from __future__ import annotations

from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is missing.

    The message names the dataset, the exact path that was searched, the layout that was
    expected there and how to obtain the data. ``filename`` holds the missing path.
    """

    def __str__(self) -> str:   # the message alone (OSError would print "[Errno None] ..." once filename is set)
        return str(self.args[0]) if self.args else ""


def not_found(dataset: str, missing: Path, layout: str, how: str) -> DatasetNotFoundError:
    """Build a :class:`DatasetNotFoundError` for ``dataset``; ``missing`` is the path that does not exist."""
    err = DatasetNotFoundError(
        f"{dataset} not found: {missing} does not exist.\n"
        f"  expected layout: {layout}\n"
        f"  to get it: {how}"
    )
    err.filename = str(missing)
    return err


def download_hint(url: str, root: Path) -> str:
    """The standard 'how to get it' text for a dataset with an official archive at ``url``."""
    return (f"call load_dataset(..., download=True) (CLI: --download), or download {url} "
            f"and extract it into {root}")
