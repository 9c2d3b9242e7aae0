"""The whole experiment for one profile: its models, their kNN libraries and the studies of them.

`Pipeline` is what the notebooks and the CLI hold; each of its three parts lives in its own module:

- `registry.Models`: trains, fine-tunes (SAT, AT/MAT/ALP) and registers models as `TrainedModel`s;
- `libraries.Libraries`: cached features, kNN libraries, accuracy and the attacked images;
- `studies.Studies`: the cached evaluation (ACC, DSR, L2) and the book's studies.
"""

from __future__ import annotations

from satnb.libraries import Libraries
from satnb.registry import Models, TrainedModel
from satnb.studies import Studies

__all__ = ["Pipeline", "TrainedModel"]


class Pipeline(Libraries, Studies, Models):
    """Trains, caches and evaluates the models a profile names: `Pipeline(profile, data, store, device)`."""

    @classmethod
    def from_session(cls, session) -> "Pipeline":
        """The pipeline for a notebook session (profile, data, store, device)."""
        return cls(session.profile, session.data, session.store, session.device)
