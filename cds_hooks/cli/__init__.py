"""The `lipcds` command line, its demo patients and the governance report."""

from cds_hooks.cli.commands import main

__all__ = ["main"]
