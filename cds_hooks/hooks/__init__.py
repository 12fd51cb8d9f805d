"""The CDS services: one hook call from envelope to cards, and the data it needs."""
