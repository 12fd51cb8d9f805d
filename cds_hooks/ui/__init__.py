"""Pages of the service for people: public rule pages ("Why this card?"), a card preview
and a governance page. Server-rendered with Flask's Jinja2; no front-end build step."""

from cds_hooks.ui.access import UiAccess
from cds_hooks.ui.views import SiteView, UiContext, create_ui_blueprint

__all__ = ["SiteView", "UiAccess", "UiContext", "create_ui_blueprint"]
