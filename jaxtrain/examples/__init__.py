"""Runnable examples: ``python -m jaxtrain.examples.<name>``."""
