"""lipcds: the CDS Hooks service for lip and facial twitching."""

from cds_hooks.app import create_app

__all__ = ["create_app"]
