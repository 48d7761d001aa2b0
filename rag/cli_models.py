"""Placeholder: commands arrive with their issue."""

import click

COMMANDS: list[click.Command] = []
