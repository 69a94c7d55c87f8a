"""Engines behind the ServingBackend protocol; each is imported only when instantiated."""
