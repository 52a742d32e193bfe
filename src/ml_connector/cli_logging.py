"""Logging options of the `ml-connector` command: --log-format, --log-level, and the config's
`logging` section, which the command line overrides."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import click

from ml_connector.config_ops import parse_level
from ml_connector.logsetup import configure, secrets_of


def _levels(values: Sequence[str]) -> tuple[int | None, dict[str, str]]:
    """'DEBUG' sets the overall level; 'ml_connector.sources=DEBUG' one component's."""
    overall: int | None = None
    levels: dict[str, str] = {}
    for value in values:
        name, sep, level = value.rpartition("=")
        try:
            parsed = parse_level(level)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--log-level") from None
        if sep and not name.strip():
            raise click.BadParameter(f"{value!r}: name the component before '='", param_hint="--log-level")
        if sep:
            levels[name.strip()] = level
        else:
            overall = parsed
    return overall, levels


def start_logging(ctx: click.Context, verbose: int, fmt: str | None, values: Sequence[str]) -> None:
    """Logging as the command line says, before the config is read."""
    overall, levels = _levels(values)
    level = overall if overall is not None else logging.WARNING - 10 * min(verbose, 2)
    ctx.obj["logging"] = {"level": level, "format": fmt, "levels": levels, "explicit_level": overall is not None
                          or verbose > 0}
    configure(level=level, fmt=fmt or "human", levels=levels)


def config_logging(ctx: click.Context, config: Any) -> None:
    """Refine with the config's `logging` section (the command line wins) and mask its secrets."""
    chosen = (ctx.find_root().obj or {}).get("logging") if ctx.find_root().obj else None
    if chosen is None:
        configure(level=logging.getLogger().level, secrets=secrets_of(config))
        return
    section = config.logging
    levels = {**section.levels, **chosen["levels"]}
    configure(level=chosen["level"], fmt=chosen["format"] or section.format or "human", levels=levels,
              secrets=secrets_of(config))
