"""satnb: a tested, reproducible implementation of "Self-supervised adversarial training" (ICASSP 2020)."""

__version__ = "0.1.0"
