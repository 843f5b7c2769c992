"""ballast: keeps a distribution network in balance."""

__version__ = "0.1.0"
