"""Typed model identities: what a model is (method, training seed, variant, what it was fine-tuned from).

A model's name (the key of caches, results files and tables) and its display label are derived
from its `ModelId`, never parsed back from a string: code that needs to know whether a model is a
SAT model, which seed it started from or which encoder twin it is reads the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from satnb.core.config import METHODS, ConfigError

PRETRAINED = METHODS  # the paper's four pretrained methods: amdim, npid, simclr, sup
SSL = ("amdim", "npid", "simclr")
BASELINES = ("at", "mat", "alp")
SAT = "sat"
KINDS = ("pretrained", "sat", "baseline")
_LABELS = {"amdim": "AMDIM", "npid": "NPID", "simclr": "SimCLR"}


@dataclass(frozen=True)
class ModelId:
    """One model: its method and everything that sets it apart from its siblings.

    - `method`: "amdim", "npid", "simclr", "sup" (pretrained), "sat", or "at", "mat", "alp" (fine-tuned);
    - `twin`: for "sup", the encoder of a supervised twin of another encoder (e.g. "resnet18"), else "";
    - `seed`: the training seed (0: the profile's own run);
    - `variant`: a named recipe or protocol variant (e.g. "ls0.1" for label smoothing), "" for the primary;
    - `base`: for SAT and the baselines, the model it was fine-tuned from;
    - `objective`, `refresh_every`, `iterations`: a SAT run's objective and its overrides of the profile.
    """

    method: str
    twin: str = ""
    seed: int = 0
    variant: str = ""
    base: ModelId | None = None
    objective: str = "heads"
    refresh_every: int | None = None
    iterations: int | None = None

    def __post_init__(self) -> None:
        known = (*PRETRAINED, SAT, *BASELINES)
        if self.method not in known:
            raise ConfigError(f"unknown method {self.method!r}; use one of {', '.join(known)}")
        if self.twin and self.method != "sup":
            raise ConfigError(f"only SUP has encoder twins, not {self.method!r}")
        fine_tuned = self.method == SAT or self.method in BASELINES
        if fine_tuned != (self.base is not None):
            raise ConfigError(f"{self.method!r} " + ("needs the model it was fine-tuned from (base=...)" if fine_tuned
                                                     else "is pretrained: it has no base model"))
        if self.method == SAT and self.base.method not in SSL:
            raise ConfigError(f"SAT fine-tunes a self-supervised model ({', '.join(SSL)}), not {self.base.method!r}")
        if self.method in BASELINES and self.base.method != "sup":
            raise ConfigError(f"{self.method.upper()} fine-tunes a supervised model, not {self.base.method!r}")
        if self.method != SAT and (self.objective != "heads" or self.refresh_every or self.iterations):
            raise ConfigError("objective, refresh_every and iterations describe SAT runs only")

    # constructors ------------------------------------------------------------
    @classmethod
    def pretrained(cls, method: str, seed: int = 0, variant: str = "", twin: str = "") -> ModelId:
        """One of the paper's pretrained models (or SUP's twin of another encoder)."""
        return cls(method, twin=twin, seed=seed, variant=variant)

    @classmethod
    def sat(cls, base: ModelId | str, objective: str = "heads", refresh_every: int | None = None,
            iterations: int | None = None, variant: str = "") -> ModelId:
        """SAT of a self-supervised model (a ModelId or the name of a default pretrained method)."""
        base = cls.pretrained(base) if isinstance(base, str) else base
        return cls(SAT, seed=base.seed, variant=variant, base=base, objective=objective,
                   refresh_every=refresh_every, iterations=iterations)

    @classmethod
    def baseline(cls, method: str, base: ModelId | None = None, variant: str = "") -> ModelId:
        """AT, MAT or ALP fine-tuning of a supervised model (default: SUP)."""
        base = base or cls.pretrained("sup")
        return cls(method, seed=base.seed, variant=variant, base=base)

    # what it is --------------------------------------------------------------
    @property
    def kind(self) -> str:
        """"pretrained", "sat" or "baseline"."""
        return "sat" if self.method == SAT else "baseline" if self.method in BASELINES else "pretrained"

    @property
    def root(self) -> ModelId:
        """The pretrained model at the start of this model's chain of fine-tuning."""
        return self if self.base is None else self.base.root

    @property
    def supervised(self) -> bool:
        """True when labels trained it (SUP, its twins and AT/MAT/ALP)."""
        return self.root.method == "sup"

    # derived strings (never parsed back) -------------------------------------
    @property
    def name(self) -> str:
        """The model's key in caches, results files and tables: "amdim", "sup-resnet18", "sat-amdim", "at"..."""
        tail = (f"-{self.variant}" if self.variant else "") + (f"-seed{self.seed}" if self.seed else "")
        if self.kind == "pretrained":
            return self.method + (f"-{self.twin}" if self.twin else "") + tail
        base = self.base.name
        if self.kind == "baseline":
            default_base = ModelId.pretrained("sup", seed=self.seed)
            return self.method + ("" if self.base == default_base else f"-{base}") + \
                (f"-{self.variant}" if self.variant else "") + (f"-seed{self.seed}" if self.seed else "")
        name = f"sat-{base}" + ("" if self.objective == "heads" else f"-{self.objective}")
        if self.refresh_every is not None or self.iterations is not None:
            name += f"-refresh{self.refresh_every}-it{self.iterations}"
        return name + (f"-{self.variant}" if self.variant else "")

    @property
    def label(self) -> str:
        """The display name: "SSL (AMDIM)", "SUP (resnet18 twin)", "SAT (AMDIM, AMDIM NCE)", "MAT"..."""
        extra = [f"variant {self.variant}"] if self.variant else []
        extra += [f"seed {self.seed}"] if self.seed and self.kind == "pretrained" else []
        if self.kind == "pretrained":
            head = f"SSL ({_LABELS[self.method]})" if self.method in SSL else "SUP"
            inner = ([f"{self.twin} twin"] if self.twin else []) + extra
            if self.method == "sup":
                return head + (f" ({', '.join(inner)})" if inner else "")
            return head[:-1] + "".join(f", {e}" for e in inner) + ")"
        if self.kind == "baseline":
            own_sup = self.base == ModelId.pretrained("sup", seed=self.seed)  # its seed's primary SUP: no need to say
            inner = ([] if own_sup else [f"from {self.base.label}"]) + extra + [f"seed {self.seed}"] * bool(self.seed)
            return self.method.upper() + (f" ({', '.join(inner)})" if inner else "")
        parts = [_LABELS[self.base.method]] + (["AMDIM NCE"] if self.objective == "amdim" else [])
        parts += [f"{k} {v}" for k, v in (("refresh", self.refresh_every), ("iterations", self.iterations)) if v]
        parts += [f"variant {v}" for v in (self.base.variant,) if v] + [f"seed {self.seed}"] * bool(self.seed)
        return f"SAT ({', '.join(parts + extra)})"

    def __str__(self) -> str:
        return self.name


def supervised_twin(encoder: str, encoder_kwargs: Mapping, sup_encoder: str) -> ModelId:
    """SUP's twin on another encoder (builder and kwargs): tagged by the builder, plus its sizes if SUP's is the same.

    `Profile.twins` names SUP's twins so ("sup-resnet18", "sup-convnet-widths(16,16)"), and a results
    record's settings name them the same: kwargs read back from JSON (lists) tag as the tuples they were.
    """
    tag = encoder
    if encoder == sup_encoder:
        sizes = (f"{k}{tuple(v) if isinstance(v, list) else v}" for k, v in sorted(encoder_kwargs.items()))
        tag += "-" + "-".join(sizes).replace(" ", "")
    return ModelId.pretrained("sup", twin=tag)
