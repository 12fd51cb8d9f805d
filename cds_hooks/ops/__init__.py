"""Running the service in production: Prometheus metrics, JSON logs, the OpenAPI document.

Each part is built by the composition root and handed what it needs; none of them reads
patient data, and none puts an id, a token or free text from a request into a metric label.
"""
