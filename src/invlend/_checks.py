"""Checks of the plain arguments of the public functions, each error naming the argument.

The models in :mod:`invlend.config` validate their fields with pydantic; the functions that take
plain numbers (``summary(n_boot=..., hurdle=...)``, ``cohort(horizon_years=...)``,
``sweep(values=...)``) check them here, with the same rules: a number is an ``int``, a
``float`` or a numpy scalar, never a ``bool`` or a string, and it is finite. The rule for
names that the models share (stages, structures, target sets) is :func:`identifier`, and the
one check of a metric name and of a seed are :func:`metric` and :func:`seed`.

Example
-------
>>> from invlend import _checks
>>> _checks.count("n_boot", 400, low=0)
400
>>> _checks.number("hurdle", True)
Traceback (most recent call last):
...
TypeError: hurdle: expected a number, got bool True
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "count",
    "errors_text",
    "field_path",
    "identifier",
    "is_identifier",
    "metric",
    "number",
    "numbers_list",
    "seed",
    "unknown_field",
]

# Matched in full (``fullmatch``): ``$`` alone would accept a name ending in a newline.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Raises ``TypeError`` for a value that is not a real number (a bool and a string are not)
    and ``ValueError`` for NaN, an infinity or a number out of range; both name ``name``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {_kind(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be a finite number, got {x}")
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low:g}, got {x:g}")
    if high is not None and x > high:
        raise ValueError(f"{name}: must be <= {high:g}, got {x:g}")
    return x


def count(name: str, value: Any, *, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; ``TypeError`` unless it is an integer (not bool)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {low}, got {_kind(value)}")
    n = int(value)
    if n < low:
        raise ValueError(f"{name}: must be >= {low}, got {n}")
    if high is not None and n > high:
        raise ValueError(f"{name}: must be <= {high}, got {n}")
    return n


def numbers_list(name: str, values: Any, *, most: int) -> list[float]:
    """A non-empty sequence (or one number) of finite numbers, at most ``most`` of them."""
    if isinstance(values, str | bytes):
        raise TypeError(f"{name}: expected a sequence of numbers, got {_kind(values)}")
    items = list(np.ravel(values)) if isinstance(values, np.ndarray) else values
    if isinstance(items, numbers.Real) and not isinstance(items, bool | np.bool_):
        items = [items]
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of numbers, got {_kind(values)}") from None
    if not items:
        raise ValueError(f"{name}: give at least one value")
    if len(items) > most:
        raise ValueError(f"{name}: at most {most} values, got {len(items)}")
    return [number(f"{name}[{i}]", v) for i, v in enumerate(items)]


def is_identifier(value: Any) -> bool:
    """Whether ``value`` is a name as :func:`identifier` accepts it."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def identifier(what: str, value: Any) -> str:
    """``value`` if it is a name: a letter, then letters, digits, ``_ . -``; 64 at most.

    ``what`` says what the name is of ("stage name", "name: target name"): the
    ``ValueError`` reads "``what`` 'x y' must start with a letter ...".
    """
    if not is_identifier(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter and use only letters, digits, "
            "'_', '.', '-' (at most 64 characters)"
        )
    return value


def metric(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of the metric names ``choices``; else ``ValueError`` naming them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: unknown {value!r}; choose from {list(choices)}")
    return value


def seed(name: str, value: Any, *, fixed: str = "") -> Any:
    """``value`` if it is a seed: a non-negative int, a numpy ``SeedSequence`` or ``None``.

    ``fixed``, when given, says why ``None`` (fresh entropy) is refused, e.g. "a sweep needs
    a fixed seed so that its points are paired".
    """
    if value is None:
        if fixed:
            raise ValueError(f"{name}: {fixed}")
        return None
    if isinstance(value, np.random.SeedSequence):
        return value
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name}: expected an int, a numpy SeedSequence or None, got {type(value).__name__}"
        )
    if value < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {value}")
    return int(value)


def field_path(parts: Iterable[str | int]) -> str:
    """A location as the user writes it: dotted keys, list indices in brackets.

    Examples
    --------
    >>> field_path(["stages", 0, "weight"])
    'stages[0].weight'
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def unknown_field(name: str, fields: Sequence[str]) -> str:
    """The message for a key that is none of ``fields``, with the closest one if any is close.

    Examples
    --------
    >>> unknown_field("volatilty", ["drift", "volatility"])
    'unknown field — did you mean volatility?'
    """
    close = difflib.get_close_matches(str(name), list(fields), n=1)
    if close:
        return f"unknown field — did you mean {close[0]}?"
    return f"unknown field; the fields are {', '.join(fields)}"


def errors_text(title: str, lines: Sequence[str]) -> str:
    """One error as its line; several as a count naming ``title``, then one line each.

    Examples
    --------
    >>> print(errors_text("Scenario", ["a: bad", "b: bad"]))
    2 invalid inputs in Scenario:
      a: bad
      b: bad
    """
    if len(lines) == 1:
        return lines[0]
    return f"{len(lines)} invalid inputs in {title}:\n" + "\n".join(f"  {x}" for x in lines)
