"""Card markdown to HTML: CommonMark with raw HTML off, so card text never injects markup.

markdown-it-py in its `commonmark` preset with `html` disabled: `<script>` in a card's
detail is shown as text, and link targets such as `javascript:` are refused by the
library's own link validation.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

_MD = MarkdownIt("commonmark", {"html": False})


def render_markdown(text: str | None) -> Markup:
    """HTML for the markdown `text`, safe to put into a page as it is."""
    return Markup(_MD.render(text or ""))  # noqa: S704  (raw HTML is off: the output is escaped)
