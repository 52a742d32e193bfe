"""`ml-connector config ...`: the configuration file itself (its JSON Schema for editors)."""

from __future__ import annotations

import json

import click


@click.group("config")
def config_group() -> None:
    """The configuration file's format."""


@config_group.command("schema")
@click.option("--indent", type=click.IntRange(0, 8), default=2, show_default=True, help="0 prints one line.")
def config_schema_command(indent: int) -> None:
    """Print the config's JSON Schema (for editors: see the README's "Editor support")."""
    from ml_connector.config_schema import config_schema

    click.echo(json.dumps(config_schema(), indent=indent or None, ensure_ascii=False, sort_keys=False))
