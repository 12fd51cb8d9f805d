"""A readable listing of the rules and their citations (backs `lipcds knowledge check`)."""

from __future__ import annotations

from typing import Any

from knowledge.kb import KnowledgeBase


def describe_rules(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Every rule with its id, kind, title, evaluator, enabled flag and resolved citations."""
    described = []
    for rule in kb.rules:
        citations = []
        for source_id, quote in rule.citations:
            source = kb.sources.get(source_id)
            citations.append({
                "source": source_id,
                "title": source.title if source else "",
                "quote": quote,
            })
        described.append({
            "id": rule.id,
            "kind": rule.kind,
            "title": rule.title,
            "evaluator": rule.evaluator,
            "enabled": rule.enabled,
            "citations": citations,
        })
    return described


def format_rule_listing(kb: KnowledgeBase) -> str:
    """The rule listing as plain text, one block per rule, headed by the KB version."""
    lines = [f"{kb.label} knowledge base {kb.version}: {len(kb.rules)} rules"]
    for rule in describe_rules(kb):
        state = "enabled" if rule["enabled"] else "disabled"
        lines.append("")
        lines.append(f"{rule['id']}  {rule['kind']}  ({state})")
        lines.append(f"    {rule['title']} - evaluator {rule['evaluator']}")
        for citation in rule["citations"]:
            lines.append(f"    [{citation['source']}] {citation['title']}")
            lines.append(f"        \"{citation['quote']}\"")
    return "\n".join(lines) + "\n"
