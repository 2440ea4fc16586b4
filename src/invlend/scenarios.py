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

from invlend.config import Scenario, default_scenario_toml, preset_toml

__all__ = ["default_scenario", "default_scenario_toml", "preset", "preset_toml"]

# The data and its parsing live in invlend.config (``Scenario.default`` needs them and config
# must not import this module back); this module is the public path to them.


def default_scenario() -> Scenario:
    """The built-in five-stage scenario for Chinese technology SMEs (frozen, cached)."""
    return Scenario.default()


def preset(name: str) -> Scenario:
    """An industry or regional preset (frozen, cached); ``Scenario.presets()`` lists them."""
    return Scenario.preset(name)
