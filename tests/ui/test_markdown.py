from cds_hooks.ui.markdown import render_markdown


def test_commonmark_emphasis_and_lists() -> None:
    html = render_markdown("**Potassium 3.1 mmol/L**\n\n- repeat\n- check magnesium")
    assert "<strong>Potassium 3.1 mmol/L</strong>" in html
    assert html.count("<li>") == 2


def test_raw_html_in_card_text_is_shown_as_text() -> None:
    html = render_markdown('Drug <script>alert(1)</script> <img src=x onerror="alert(2)">')
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def test_dangerous_link_targets_are_not_links() -> None:
    html = render_markdown("[click](javascript:alert(1)) [ok](https://example.org/a)")
    assert 'href="javascript:' not in html
    assert '<a href="https://example.org/a">ok</a>' in html


def test_nothing_renders_empty() -> None:
    assert render_markdown(None) == ""
