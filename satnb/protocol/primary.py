"""The primary protocol, declared before any number: each setting, its value in a profile, and where it comes from.

The paper's text decides where it is explicit, the authors' code where the text is silent; every
other choice (another eps convention, the other guide rule, the attack zoo, SUP's label smoothing,
the authors' SAT configuration) is a named variant judged beside the primary, never the primary.
"""

from __future__ import annotations

from satnb.core.config import Profile

PAPER, CODE, OURS = "the paper's text", "the authors' code (the text is silent)", "ours (paper and code are silent)"

def declared_protocol(profile: Profile) -> list[dict]:
    """The primary protocol's settings in this profile: one row (setting, value, source) each."""
    p, sup, sat = profile.protocol, profile.train.get("sup"), profile.sat
    rows = [
        ("eps units", "pixel values in [0, 1] (eps is not rescaled by the normalisation)", PAPER),
        ("gradient attack, small", f"eps {p.small.eps}, step {p.small.step}, {p.small.steps} steps", PAPER),
        ("gradient attack, large", f"eps {p.large.eps}, step {p.large.step}, {p.large.steps} steps", PAPER),
        ("guide group", f"rule '{p.guide}': the nearest group of m library images of another class", PAPER),
        ("k, m", f"k = {p.k} (paper: 75), m = {p.m} (paper: 300)", PAPER),
        ("attacked images", (f"the first N = {p.n_attack}" if p.n_attack else "every") + " correctly classified test "
         f"image (paper: the first 1 000; DSR on the first {p.n_subview} is reported as that sub-view)",
         PAPER if p.n_attack else OURS),
        ("kNN vote", "plain majority over the k nearest library features, ties to the lower class", CODE),
        ("optimisation attack", f"Adam lr 1e-2 in tanh space, binary search on c: {p.opt_binary_steps} x "
                                f"{p.opt_steps} steps (authors: 10 x 500); claim 1's L2 leg at "
                                f"{profile.zoo.strong_opt_binary_steps} x {profile.zoo.strong_opt_steps}", CODE),
        ("L2 statistic", "claim 1: median in pixel units over every attacked image, unbroken ones infinitely far; "
                         "Table 1: the authors' mean over the broken images in normalised units", OURS),
        ("SUP", "plain cross-entropy on AMDIM's encoder" + (
            f", {sup.optimizer} lr {sup.lr}, {sup.epochs} epochs" if sup else "")
         + (f" (label smoothing {sup.label_smoothing}: NOT the paper's)" if sup and sup.label_smoothing else ""),
         PAPER),
        ("SAT objective", f"'{sat.objective}': the separable critic phi1(z)^T phi2(z^) of eq. 7-11", PAPER),
        ("SAT guide rule", f"'{sat.guide}', as the evaluation's", PAPER),
        ("SAT library refresh", f"every {sat.refresh_every} iteration(s) (authors: every one)", CODE),
        ("SAT optimiser", f"Adam lr {sat.lr}, betas {tuple(sat.betas)}, weight decay {sat.weight_decay}, "
                          f"batch {sat.batch_size}, {sat.iterations} iterations", PAPER),
        ("library", "the training images' features (the cpu/gpu/paper profiles hold 5 000 out, as the authors)",
         CODE),
    ]
    return [{"setting": s, "value": v, "source": src} for s, v, src in rows]
