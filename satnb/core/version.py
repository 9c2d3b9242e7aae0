"""satnb's version (the package face and every result's provenance read it from here)."""

__version__ = "0.1.0"
