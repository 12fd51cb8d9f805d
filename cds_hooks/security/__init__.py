"""Who may call: the EHR's JWT, replay protection, and logs kept free of tokens."""
