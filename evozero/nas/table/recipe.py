"""What a table was built with: the settings of the ``nas`` section that decide a cell's
training, so a search that looks results up in a table trains, in effect, as the table did.

A table's ``meta["recipe"]`` is :func:`table_recipe` of the section it was built from; a
config that uses the table must give the same values (:func:`recipe_mismatch`), and the
same config without the table trains every cell for real exactly as the table recorded
it (seed 0 of the table is run seed 0).
"""
from __future__ import annotations

from typing import Any

from evozero.config import Config
from evozero.config.root import config_from_dict, config_to_dict

#: The keys of the nas section that decide how a cell trains (and so a table's figures).
RECIPE_KEYS = ("space", "dataset", "data_seed", "mnist1d", "stem_channels", "stacks",
               "cells_per_stack", "training")


def table_recipe(config: Config) -> dict[str, Any]:
    """The recipe of the config's nas section, as plain JSON-able values."""
    nas = config_to_dict(config)["nas"]
    return {key: nas[key] for key in RECIPE_KEYS}


def recipe_mismatch(recipe: dict[str, Any], table: dict[str, Any]) -> str | None:
    """The first difference of ``recipe`` from a table's recipe, as
    ``nas.KEY: VALUE, but the table was built with OTHER``, or None."""
    for key in RECIPE_KEYS:
        ours, theirs = recipe.get(key), table.get(key)
        if isinstance(ours, dict) and isinstance(theirs, dict):
            for sub in sorted(set(ours) | set(theirs)):
                if ours.get(sub) != theirs.get(sub):
                    return (f"nas.{key}.{sub}: {ours.get(sub)!r}, but the table was built "
                            f"with {theirs.get(sub)!r}")
        elif ours != theirs:
            return f"nas.{key}: {ours!r}, but the table was built with {theirs!r}"
    return None



def recipe_config(recipe: dict[str, Any]) -> Config:
    """A config whose nas section trains as ``recipe`` says (what verify retrains with)."""
    return config_from_dict({"nas": {**recipe, "latency_drift": "none"}})
