"""Reading TOML configuration files (model specs, experiments) with errors that name the key."""
from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path, what: str) -> dict:
    """The parsed TOML file at ``path``; ``what`` names it in errors (e.g. ``"model spec"``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{what} {path} is not valid TOML: {err}") from None


def reject_unknown(table: dict, allowed: set, where: str) -> None:
    """Raise a ``ValueError`` listing the keys of ``table`` that are not in ``allowed``."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")


def require(table: dict, keys: tuple[str, ...], where: str) -> None:
    """Raise a ``ValueError`` naming the first of ``keys`` missing from ``table``."""
    for key in keys:
        if key not in table:
            raise ValueError(f"{where}: missing required key {key!r}")
