"""The HTTP face of the service: endpoints, error answers and the wire schemas."""
