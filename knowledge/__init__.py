"""The clinical knowledge base: data files, their validation, units, codes and rules."""

from knowledge.kb import KnowledgeBase
from knowledge.loader import KnowledgeError, load_knowledge_base

__all__ = ["KnowledgeBase", "KnowledgeError", "load_knowledge_base"]
