"""The kNN classifier on encoder features (faiss-like fit/search/predict), feature extraction, guide groups."""

from satnb.core.lazy import lazy_modules, submodules
from satnb.knn.classifier import KNN, guide_size

MODULES = submodules(__path__)
__all__ = ["KNN", "guide_size", *MODULES]
__getattr__ = lazy_modules(__name__, MODULES)
