"""The models built on an encoder: a classifier (encoder + linear layer) and an encoder with a projection head."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from satnb.nets.normalize import Normalize


class MLPHead(nn.Module):
    """Projection head Linear-BN-ReLU-Linear (SimCLR style)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.out_dim: int = int(out_dim)

    def forward(self, h: Tensor) -> Tensor:
        """Projected features."""
        return self.net(h)


def _output_dim(head: nn.Module) -> int:
    out_dim = getattr(head, "out_dim", None)
    if isinstance(out_dim, int):
        return out_dim
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("cannot infer the head's output size; pass head_dim=...")
    return int(linears[-1].out_features)


class Classifier(nn.Module):
    """Encoder + linear layer: forward gives logits, features gives the encoder's (penultimate) features."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_classes = int(n_classes)
        self.feature_dim: int = int(encoder.feature_dim)
        self.fc = nn.Linear(self.feature_dim, self.n_classes)

    @property
    def normalize(self) -> Normalize:
        """The encoder's input normalisation."""
        return self.encoder.normalize

    def features(self, x: Tensor) -> Tensor:
        """(B, feature_dim) encoder features of [0, 1] images."""
        return self.encoder.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, n_classes) logits."""
        return self.fc(self.features(x))


class ProjectionModel(nn.Module):
    """Encoder + projection head: forward gives the (optionally L2-normalised) head output.

    ``feature_source`` chooses what ``features`` returns for the kNN: the encoder's features
    ("encoder", e.g. SimCLR) or the head output ("head", e.g. NPID's normalised 128-d embedding).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        feature_source: str = "encoder",
        normalize_head: bool = False,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        if feature_source not in ("encoder", "head"):
            raise ValueError(f"feature_source must be 'encoder' or 'head', got {feature_source!r}")
        self.encoder = encoder
        self.head = head
        self.feature_source = feature_source
        self.normalize_head = bool(normalize_head)
        self.head_dim: int = int(head_dim) if head_dim is not None else _output_dim(head)
        self.feature_dim: int = int(encoder.feature_dim) if feature_source == "encoder" else self.head_dim

    @property
    def normalize(self) -> Normalize:
        """The encoder's input normalisation."""
        return self.encoder.normalize

    def project(self, h: Tensor) -> Tensor:
        """Head output for encoder features h (L2-normalised if normalize_head)."""
        z = self.head(h)
        return F.normalize(z, dim=1) if self.normalize_head else z

    def forward(self, x: Tensor) -> Tensor:
        """(B, head_dim) projection of [0, 1] images."""
        return self.project(self.encoder.features(x))

    def features(self, x: Tensor) -> Tensor:
        """(B, feature_dim) representation for the kNN (encoder features or head output)."""
        h = self.encoder.features(x)
        return h if self.feature_source == "encoder" else self.project(h)
