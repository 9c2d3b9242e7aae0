"""The one set of argument checks: each returns the value in its plain type or raises a ConfigError saying the fix."""

from __future__ import annotations

import math

import numpy as np

from satnb.core.config import ConfigError


def integer(value: object, name: str, fix: str, minimum: int = 1) -> int:
    """`value` as an int, or a ConfigError when it is not an integer >= minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}; {fix}")
    return int(value)


def positive(value: object, name: str, fix: str, upper: float | None = None) -> float:
    """`value` as a float, or a ConfigError when it is not a finite number > 0 (and <= upper when given)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}; {fix}")
    if upper is not None and value > upper:
        raise ConfigError(f"{name}={value} is larger than {upper}; {fix}")
    return float(value)


def one_of(value: object, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """`value` when it is one of `choices`, else a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; use one of {', '.join(map(str, choices))}")
    return value  # type: ignore[return-value]


def parse_threads(value: str | int) -> int:
    """A positive thread count (from --threads or SATNB_THREADS)."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigError(f"threads must be a positive integer, got {value!r}; use e.g. --threads 1 or "
                          "SATNB_THREADS=1 (or unset SATNB_THREADS for torch's choice)")
    return n


def parse_switch(value: str, name: str) -> bool:
    """An on/off setting from the environment: 1/true/yes/on or 0/false/no/off (case-insensitive)."""
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (on or off), got {value!r}; e.g. {name}=0")
