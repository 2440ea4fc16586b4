"""Built-in scenarios, shipped as commented TOML data with a source for every number.

Example
-------
>>> from invlend.scenarios import default_scenario, default_scenario_toml
>>> default_scenario().stages[0].name
'seed'
>>> "Carta" in default_scenario_toml()
True
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from invlend.config import Scenario

__all__ = ["default_scenario", "default_scenario_toml"]


def default_scenario_toml() -> str:
    """The built-in scenario as commented TOML, each number with its source."""
    return resources.files("invlend").joinpath("data/default_scenario.toml").read_text("utf-8")


@cache
def default_scenario() -> Scenario:
    """The built-in five-stage scenario for Chinese technology SMEs (frozen, cached)."""
    return Scenario.model_validate(tomllib.loads(default_scenario_toml()))
