"""The protocol's axes and the named variants of the primary protocol: one source for each choice's values.

The primary value of every axis comes first. A variant is never silently the primary: it is a
named model (`ModelId.variant`) or a named cell of the protocol grid, judged beside the primary.
"""

from __future__ import annotations

EPS_SPACES = ("pixel", "normalized")  # eps in pixel units of [0, 1] (the paper's text) | the normalised tensor (code)
GUIDE_RULES = ("paper", "authors")  # the paper's "nearest group of a different class" | the authors' "guide mode 2"
ATTACK_SETS = ("paper", "worst case")  # the paper's two attacks | the per-image worst case over the attack zoo

# Named recipe variants of a pretrained model (a `ModelId.variant`): the changes they make to its recipe.
# "ls0.1": label smoothing 0.1 (our earlier SUP recipe, kept as a sensitivity variant: it masks the paper's
# gradient attack); "adam": the paper's SUP optimiser, Adam 1e-3 at a constant rate.
RECIPE_VARIANTS: dict[str, dict] = {
    "ls0.1": {"label_smoothing": 0.1},
    "adam": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0.0},
}
# Named SAT variants (a SAT `ModelId.variant`): the SATSettings they change, and "eps_space" for the attack's units.
# "authors": the authors' code (AMDIM's NCE objective, only successful adversarial pairs kept, Adam betas
# (0.8, 0.999), weight decay 1e-5, the library rebuilt every iteration, guide mode 2); "normalized": the
# paper's SAT with eps on the normalised tensor (the authors' eps convention).
SAT_VARIANTS: dict[str, dict] = {
    "authors": {"objective": "amdim", "keep_only_successful": True, "betas": (0.8, 0.999), "weight_decay": 1e-5,
                "refresh_every": 1, "guide": "authors"},
    "normalized": {"eps_space": "normalized"},
}
