"""Exchange adapters: the Exchange protocol and its implementations."""
