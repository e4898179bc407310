"""An unknown config-group option (``experiment=nonexistent``, ``loss=dpoo``), refused before Hydra starts.

Hydra's own report of a missing group option is a multi-line "Could not find" with the search path,
and exit 1. The entry points check each group override on the command line against the options
Hydra's config loader lists for that group (files under ``conf/`` and registered schemas alike) and
print one ``error:`` line with the closest option (difflib) and the full list, exit 2.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Optional

CUSTOM_SEARCH_PATH = ("--config-dir", "-cd", "--config-path", "-cp", "hydra.searchpath")


def _values(override) -> list[str]:
    """The option names an override asks for: one, or each of a choice sweep (``loss=dpo,ipo``)."""
    if override.is_sweep_override():
        from hydra.core.override_parser.types import ChoiceSweep

        return [str(v) for v in override.value().list] if isinstance(override.value(), ChoiceSweep) else []
    value = override.value()
    return [value] if isinstance(value, str) else []  # null (no overlay) or a non-string: nothing to look up


def option_problem(group: str, option: str, options: list[str]) -> str:
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.5)
    hint = f"did you mean {group}={close[0]}? " if close else ""
    return f"{group}={option} is not an option of the config group '{group}'; {hint}options: {options} (conf/{group}/)"


def unknown_group_option(overrides: list[str], config_dir: Path) -> Optional[str]:
    """The message for the first override that names a missing option of a config group, else None.

    Overrides Hydra cannot parse, deletions and a custom search path are left to Hydra."""
    if any(a.split("=")[0].lstrip("+~") in CUSTOM_SEARCH_PATH for a in overrides):
        return None
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args = [a for a in overrides if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException:
        return None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            for o in parsed:
                if o.is_delete() or o.key_or_group.startswith("hydra"):
                    continue  # hydra/launcher, hydra/sweeper: Hydra's own groups and plugins
                options = loader.get_group_options(o.key_or_group)
                if not options:
                    continue  # a config key (tau=0.5, model.name_or_path=...), not a group
                for option in _values(o):
                    if option not in options:
                        return option_problem(o.key_or_group, option, options)
    finally:
        GlobalHydra.instance().clear()
    return None


__all__ = ["option_problem", "unknown_group_option"]
