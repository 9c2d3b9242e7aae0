"""The results record of a run (a JSON file): read, checked, and what it holds, by typed model identity.

What `satnb.experiment.run.collect` writes (`python -m satnb run`):

- "profile", "settings" (the profile's `to_dict`), "dataset" (`Dataset.describe`);
- "models": {name: the fields of its `ModelId`} (files made before it read their models from the structure below);
- "training": {pretrained model: seconds, epochs, encoder (builder), encoder_name, curve};
- "evaluation": {eps convention: {model: evaluation record (acc, dsr_small, dsr_large, n_attacked, encoder...)}};
- "sat": {seed method: fine-tuning record}, "sat_refresh", "baselines": {method: fine-tuning record};
- "robustness": {eps convention: {model: attack-zoo record}}; "claims"; "stage_seconds"; "provenance".

A model's identity (`model_ids`) is read from that "models" entry or the file's structure, never by
parsing a name; labels (`label`), encoders (`encoder_name`) and the supervised model on the same
encoder as another (`same_encoder_supervised`) are read from it. `worst_case_view` is the record
re-judged under the attack zoo's worst case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from satnb.core import stats
from satnb.core.config import PROFILES
from satnb.core.environment import shipped
from satnb.core.fingerprint import PACKAGE_DIR, code_ids
from satnb.core.identity import BASELINES, PRETRAINED, SSL, ModelId, supervised_twin
from satnb.core.variants import SAT_VARIANTS
from satnb.defences import SAT_OBJECTIVES
from satnb.experiment.run import STAGE_CODE, stage_fingerprints
from satnb.report.compact import unpack_results

MISSING = "not recorded"  # what a table or sentence shows for a number or name a record does not hold
FIX = "rerun `python -m satnb run` for it or delete the entry"


def load_results(path) -> dict:
    """Read a results JSON written by `python -m satnb run`."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass a results JSON file written by `python -m satnb run`")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `python -m satnb run --profile ...` to make it")
    fix = "pass a results JSON written by `python -m satnb run`"
    try:
        res = json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file ({err.reason}); {fix}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from err
    except RecursionError as err:
        raise ValueError(f"{path} nests JSON too deeply to be a satnb results file; {fix}") from err
    if not isinstance(res, dict):
        raise ValueError(f"{path} holds a JSON {type(res).__name__}, not a satnb results file; {fix}")
    res = unpack_results(res, str(path))
    for key, kind in (("profile", str), ("dataset", dict), ("evaluation", dict)):
        if not isinstance(res.get(key), kind):
            raise ValueError(f"{path} lacks {key!r} (or it is not a {kind.__name__}): not a satnb results file; {fix}")
    if not isinstance(res["dataset"].get("dataset"), str):
        raise ValueError(f"{path}: dataset.dataset (the dataset's name) is missing or not a string; {FIX}")
    for key, kind in SECTIONS.items():
        if res.get(key) is not None and not isinstance(res[key], kind):
            raise ValueError(f"{path}: {key!r} is a {type(res[key]).__name__}, not a {kind.__name__}; {FIX}")
    for key in ("training", "sat", "baselines"):
        for name, r in (res.get(key) or {}).items():
            if not isinstance(r, dict):
                raise ValueError(f"{path}: {key}.{name} is a {type(r).__name__}, not a dict; {FIX}")
    check_entries(res, str(path))
    check_zoo(res, str(path))
    check_grid(res, str(path))
    model_ids(res, str(path))
    return res


def check_grid(res: dict, where: str = "the results record") -> None:
    """Raise ValueError unless every cell of the protocol grid names its eps convention and guide rule and holds
    evaluation and zoo records the claims can read."""
    for i, cell in enumerate(res.get("grid") or []):
        at = f"{where}: grid[{i}]"
        if not isinstance(cell, dict) or not all(isinstance(cell.get(k), str) for k in ("eps_space", "guide")) or \
                not all(isinstance(cell.get(k, {}), dict) for k in ("evaluation", "robustness")):
            raise ValueError(f"{at} is not a grid cell (eps_space and guide names, evaluation and robustness "
                             f"dicts); {FIX}")
        view = {**res, "evaluation": {cell["eps_space"]: cell.get("evaluation", {})},
                "robustness": {cell["eps_space"]: cell.get("robustness", {})}}
        check_entries(view, at)
        check_zoo(view, at)


ENTRY_NUMBERS = ("acc", "dsr_small", "dsr_large", "n_attacked")


def judged_space(res: dict) -> str:
    """The eps convention a record's claims are judged in: pixel (the paper's) if evaluated, else the first it holds."""
    spaces = [space for space, models in (res.get("evaluation") or {}).items() if models]
    return "pixel" if "pixel" in spaces or not spaces else spaces[0]


def check_entries(res: dict, where: str = "the results record") -> None:
    """Raise ValueError unless every evaluation entry holds the numbers the report tables read."""
    evaluation = res.get("evaluation")
    if not isinstance(evaluation, dict):
        raise ValueError(f"{where} lacks 'evaluation' (or it is not a dict); pass a results JSON written by "
                         "`python -m satnb run`")
    for space, models in evaluation.items():
        if not isinstance(models, dict):
            raise ValueError(f"{where}: evaluation.{space} is a {type(models).__name__}, not a dict of models; {FIX}")
        for name, r in models.items():
            if not isinstance(r, dict):
                raise ValueError(f"{where}: evaluation.{space}.{name} is a {type(r).__name__}, not a dict; {FIX}")
            for key in ENTRY_NUMBERS:
                value = r.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    got = "missing" if key not in r else f"{value!r}, not a number"
                    raise ValueError(f"{where}: evaluation.{space}.{name}.{key} is {got}; {FIX}")
            _check_outcomes(r, f"{where}: evaluation.{space}.{name}", _n_test(res, r))


SECTIONS = {"settings": dict, "training": dict, "sat": dict, "baselines": dict, "robustness": dict, "models": dict,
            "provenance": dict, "stage_seconds": dict, "sat_refresh": dict, "claims": list, "sat_variants": dict,
            "grid": list, "protocol": dict, "seeds": list}
BITS = re.compile(r"(\d+):([0-9a-f]*)")


def _n_test(res: dict, r: dict) -> int | None:
    """The size of the test set a record was evaluated on (the dataset's, else the record's own), if recorded."""
    dataset = res.get("dataset")
    n = dataset.get("n_test") if isinstance(dataset, dict) else None
    n = r.get("n_test") if n is None else n
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _check_bits(value, where: str) -> int:
    """The number of per-image outcomes a packed bit string holds; ValueError when it is not one."""
    match = BITS.fullmatch(value) if isinstance(value, str) else None
    if match is None or len(match[2]) % 2 or len(match[2]) * 4 < int(match[1]):
        raise ValueError(f"{where} is {str(value)[:40]!r}, not per-image bits ('<n>:<hex>' from stats.pack_bits); "
                         f"{FIX}")
    return int(match[1])


def _check_outcomes(r: dict, where: str, n_test: int | None) -> None:
    """Raise ValueError unless a record's N, intervals and per-image bits are ones a run can write."""
    n = r["n_attacked"]
    if not isinstance(n, int) or n < 0 or (n_test is not None and n > n_test):
        top = "" if n_test is None else f" up to the {n_test} test images"
        raise ValueError(f"{where}.n_attacked is {n!r}, not a whole number of images{top}; {FIX}")
    prefix = r.get("n_prefix", 0)
    if isinstance(prefix, bool) or not isinstance(prefix, int) or prefix < 0:
        raise ValueError(f"{where}.n_prefix is {prefix!r}, not a whole number of images; {FIX}")
    for key, value in r.items():
        if key.endswith("_ci") and value is not None and not (
                isinstance(value, list) and len(value) == 2
                and all(v is None or _is_number(v) for v in value)):
            raise ValueError(f"{where}.{key} is {str(value)[:40]!r}, not an interval [low, high]; {FIX}")
    bits = r.get("per_image")
    if bits is None:
        return
    if not isinstance(bits, dict):
        raise ValueError(f"{where}.per_image is a {type(bits).__name__}, not a dict of per-image bits; {FIX}")
    for key, value in bits.items():
        count = _check_bits(value, f"{where}.per_image.{key}")
        if key.startswith(("survived_", "noise_survived_")) and count != n:
            raise ValueError(f"{where}.per_image.{key} holds {count} outcomes for n_attacked={n} images; {FIX}")
    if "correct" in bits and "n_prefix" in r and stats.unpack_bits(bits["correct"])[:prefix].sum() < n:
        raise ValueError(f"{where}: n_attacked={n} but per_image.correct holds fewer correct images in its scanned "
                         f"prefix (n_prefix={prefix}); {FIX}")


def check_zoo(res: dict, where: str = "the results record") -> None:
    """Raise ValueError unless every attack-zoo record holds what the worst-case view reads."""
    for space, models in (res.get("robustness") or {}).items():
        if not isinstance(models, dict):
            raise ValueError(f"{where}: robustness.{space} is a {type(models).__name__}, not a dict of models; {FIX}")
        for name, z in models.items():
            at = f"{where}: robustness.{space}.{name}"
            try:
                worst = {s: z["settings"][s]["attacks"]["worst case"] for s in ("small", "large")}
                rec = {"n_attacked": z["n_attacked"], "n_prefix": z["n_prefix"],
                       **{f"{k}_{s}_ci": w[f"{k}_ci"] for s, w in worst.items() for k in ("dsr", "robust")},
                       "per_image": {f"survived_{s}": w["survived"] for s, w in worst.items()}}
                numbers = [w[k] for w in worst.values() for k in ("dsr", "robust")]
            except (KeyError, TypeError) as err:
                raise ValueError(f"{at} lacks the worst case of its attacks ({type(err).__name__}: {err}); "
                                 f"{FIX}") from err
            if not all(_is_number(v) for v in numbers):
                raise ValueError(f"{at}: a worst-case dsr or robust is not a number; {FIX}")
            _check_outcomes(rec, at, _n_test(res, z))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def results_dir() -> Path:
    """The committed results/ folder: the checkout's (searched upward from here and from the package), else the
    copy an installed wheel ships (`environment.shipped`)."""
    for start in (Path.cwd(), PACKAGE_DIR):
        for d in (start, *start.parents):
            if (d / "results").is_dir() and (d / "satnb").is_dir():
                return d / "results"
    found = shipped("results")
    if found is None or not found.is_dir():
        raise FileNotFoundError("no results/ folder found next to the satnb package nor installed with it; run "
                                "from a checkout or install satnb from its wheel (pip install satnb-*.whl)")
    return found


def committed_results() -> dict[str, dict]:
    """Every committed reference run in results/, by file name."""
    return {p.name: load_results(p) for p in sorted(results_dir().glob("*.json"))}


def staleness(res: dict, root: Path | None = None) -> dict[str, str]:
    """Which stages of a results record were made by code other than today's: {stage: why}; empty when current.

    Compares the fingerprint of each stage's code recorded in the file (`provenance.stage_code`)
    with the current one (`satnb.core.fingerprint`); a file that predates stage fingerprints is
    stale in every stage, since nothing shows what made it.
    """
    recorded = (res.get("provenance") or {}).get("stage_code")
    current = stage_fingerprints() if root is None else stage_fingerprints(root)
    if not isinstance(recorded, dict):
        return {"all": "made before satnb recorded the code of each stage; rerun it to check it"}
    return {stage: f"the code of {code_ids(STAGE_CODE[stage])[0]} (or of a definition it reaches) changed"
            for stage, fp in recorded.items() if stage in current and current[stage] != fp}


def freshness(res: dict) -> str:
    """One line: "current" or "stale: <stages and why>" (what the report chapter and `satnb report` print)."""
    stale = staleness(res)
    if not stale:
        return "current: every stage was made by the code at HEAD"
    return "stale: " + "; ".join(f"{stage} ({why})" for stage, why in stale.items())


# ----------------------------------------------------------------------------- the models of a record


def model_id(fields: Mapping) -> ModelId:
    """A ModelId from the fields a results file records of it (`dataclasses.asdict` of it, as `collect` writes)."""
    base = fields.get("base")
    return ModelId(**{**fields, "base": None if base is None else model_id(base)})


def model_ids(res: dict, where: str = "the results record") -> dict[str, ModelId]:
    """The models of a results record by name: its "models" entry, else read from its structure (older files).

    The structure: the pretrained methods and SUP's twins (from the settings' encoders) it trained or
    evaluated, SAT of each seed in "sat" or evaluated (with the settings' objective), and the
    baselines in "baselines" or evaluated. A "models" entry that does not describe its names raises.
    """
    recorded = res.get("models")
    if recorded is None:
        settings = res.get("settings") or {}
        objective = (settings.get("sat") or {}).get("objective", "heads")
        sat = [ModelId.sat(seed, objective=objective) for seed in res.get("sat") or {} if seed in SSL]
        present = set(res.get("training") or {}) | set(res.get("baselines") or {}) | \
            {n for space in (res.get("evaluation") or {}).values() if isinstance(space, dict) for n in space}
        return {m.name: m for m in [*_candidates(settings, (objective,)), *sat] if m.name in present or m in sat}
    if not isinstance(recorded, dict):
        raise ValueError(f"{where}: 'models' is a {type(recorded).__name__}, not a dict of model identities; {FIX}")
    out = {}
    for name, fields in recorded.items():
        try:
            out[name] = model_id(fields)
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{where}: models.{name} is not a model identity ({err}); {FIX}") from err
        if out[name].name != name:
            raise ValueError(f"{where}: models.{name} describes the model {out[name].name!r}, not {name!r}; {FIX}")
    return out


def _twins(settings: Mapping) -> dict[str, ModelId]:
    """SUP's twins a run's settings call for, by the self-supervised method whose encoder each one shares."""
    train = settings.get("train") or {}
    sup = train.get("sup")
    if not sup:
        return {}
    encoder = lambda t: (t.get("encoder"), t.get("encoder_kwargs") or {})  # noqa: E731
    return {m: supervised_twin(train[m]["encoder"], train[m].get("encoder_kwargs") or {}, sup["encoder"])
            for m in ("npid", "simclr") if train.get(m) and encoder(train[m]) != encoder(sup)}


def _candidates(settings: Mapping, objectives: tuple[str, ...]) -> list[ModelId]:
    """Every model a run with these settings can make: pretrained, twins, SAT of each seed, the baselines."""
    out = [*dict.fromkeys(_twins(settings).values())]
    for seed in settings.get("seeds") or (0,):
        pre = [ModelId.pretrained(m, seed=seed) for m in PRETRAINED]
        out += [*pre, *(ModelId.sat(b, objective=o) for b in pre if b.method in SSL for o in objectives),
                *(ModelId.baseline(m, base=pre[PRETRAINED.index("sup")]) for m in BASELINES)]
    out += [ModelId.pretrained("sup", variant=v) for v in settings.get("sup_variants") or ()]
    out += [ModelId.sat(ModelId.pretrained("amdim"), objective=SAT_VARIANTS[v].get("objective", objectives[0]),
                        variant=v) for v in settings.get("sat_variants") or () if v in SAT_VARIANTS]
    return out


@lru_cache(maxsize=1)
def known_models() -> dict[str, ModelId]:
    """Every model a run of one of the profiles can make, by name (SAT with either objective)."""
    return {m.name: m for p in PROFILES.values() for m in _candidates(p.to_dict(), SAT_OBJECTIVES)}


METHOD_NAMES = {"amdim": "AMDIM", "npid": "NPID", "simclr": "SimCLR", "sup": "SUP"}  # as the paper writes them


def label(model: ModelId | str, models: Mapping[str, ModelId] | None = None) -> str:
    """A model's display name ("SAT (AMDIM)"): its ModelId's label, a name found through `models` or `known_models`.

    `models` is the record's (`model_ids(res)`) when the name comes from one; it is looked up, never parsed.
    """
    if isinstance(model, ModelId):
        return model.label
    found = (models or {}).get(model) or known_models().get(model)
    if found is None:
        raise ValueError(f"no model called {model!r} is known: label its ModelId (`ModelId.label`), or pass the "
                         "models of the record that holds it (`record.model_ids(res)`)")
    return found.label


# ----------------------------------------------------------------------------- encoders


def settings_encoder_name(encoder: str, kwargs: Mapping) -> str:
    """An encoder's name from its settings (builder name and kwargs), as `nets.encoders.describe_encoder` names it."""
    if encoder == "amdim":
        words = ["AMDIM"] + [f"{short} {kwargs[k]}" for k, short in (("ndf", "ndf"), ("n_rkhs", "rkhs"),
                                                                     ("n_depth", "depth")) if k in kwargs]
        words += ["BN"] if kwargs.get("use_bn") else []
    else:
        words = ["ResNet-18" if encoder == "resnet18" else encoder] + [
            f"{k} {'-'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in sorted(kwargs.items())]
    return " ".join(words)


def encoder_name(res: dict, name: str, space: str = "pixel", models: Mapping[str, ModelId] | None = None) -> str:
    """The encoder behind a model of a results record: its evaluation's, its pretraining's, else its settings'.

    Fine-tuned models run on the encoder of the pretrained model they started from; a name from
    the settings ends "(from settings)"; "not recorded" when nothing names it. `models`: `model_ids(res)`.
    """
    r = ((res.get("evaluation") or {}).get(space) or {}).get(name) or {}
    if r.get("encoder"):
        return r["encoder"]
    found = (model_ids(res) if models is None else models).get(name)
    if found is None:
        return MISSING
    root = found.root
    t = (res.get("training") or {}).get(root.name) or {}
    if t.get("encoder_name"):
        return t["encoder_name"]
    settings = res.get("settings") or {}
    # a twin's settings: SUP's recipe on the encoder of the method it twins
    method = next((m for m, twin in _twins(settings).items() if twin == root), None) if root.twin else root.method
    s = (settings.get("train") or {}).get(method) or {}
    enc = s.get("encoder") or t.get("encoder")
    return settings_encoder_name(enc, s.get("encoder_kwargs") or {}) + " (from settings)" if enc else MISSING


def model_encoders(res: dict, space: str = "pixel") -> dict[str, str]:
    """The encoder behind every model of a results record, by name (`encoder_name`)."""
    ids = model_ids(res)
    return {n: encoder_name(res, n, space, ids) for n in ids}


def same_encoder_supervised(encoders: Mapping[str, str | None], name: str,
                            models: Mapping[str, ModelId] | None = None) -> str | None:
    """The supervised model of a run on the same encoder as `name`: SUP, else SUP's twin on it; None if neither.

    `encoders`: the encoder of each model of the run that may be chosen (model name -> encoder name,
    e.g. from its evaluation records or `model_encoders(res)`); `models`: the run's identities
    (`model_ids`; else `known_models`). A model whose encoder is not recorded shares it with none.
    """
    ids = {**known_models(), **(models or {})}
    encoder = encoders.get(name)
    if encoder in (None, MISSING):
        return None
    plain = ModelId.pretrained("sup")
    supervised = sorted((n for n in encoders if n in ids and ids[n].kind == "pretrained" and ids[n].method == "sup"),
                        key=lambda n: (ids[n] != plain, n))
    return next((n for n in supervised if encoders[n] == encoder), None)


# ----------------------------------------------------------------------------- the parts of a record, by model


def evaluation_records(res: dict, space: str = "pixel") -> dict[str, dict]:
    """A results record's evaluation records of one eps convention, by model, each naming its "encoder"."""
    ev, ids = ((res.get("evaluation") or {}).get(space)) or {}, model_ids(res)
    return {n: {**r, "encoder": encoder_name(res, n, space, ids)} for n, r in ev.items() if isinstance(r, dict)}


def fine_tuning_records(res: dict, space: str = "pixel") -> dict[str, dict]:
    """A results record's SAT and baseline runs by model name, each naming its "encoder"."""
    runs, ids = [*((res.get("sat") or {}).values()), *((res.get("baselines") or {}).values())], model_ids(res)
    return {r["name"]: {**r, "encoder": encoder_name(res, r["name"], space, ids)} for r in runs
            if isinstance(r, dict) and "name" in r}


def fine_tuning_trajectories(res: dict, kind: str = "baselines") -> dict[str, list[dict]]:
    """The trajectories of a results record's fine-tuning runs ("baselines" or "sat"), by method or seed."""
    return {m: list(r.get("trajectory") or []) for m, r in (res.get(kind) or {}).items() if isinstance(r, dict)}


def result_curves(res: dict) -> dict[str, list[dict]]:
    """The kNN-accuracy curve of each pretrained model of a results record ({} in files older than curves)."""
    return {m: list(t.get("curve") or []) for m, t in (res.get("training") or {}).items() if t.get("curve")}


# ----------------------------------------------------------------------------- the record under the strongest attack


def worst_case_view(res: dict, space: str = "pixel") -> dict:
    """A results record whose evaluation outcomes are the attack zoo's worst case (and L2 the minimum-norm attack's).

    Claims computed on it (`claims.assess`) are the paper's claims re-judged against the strongest
    attack we have; models without a zoo record are left out.
    """
    zoo = (res.get("robustness") or {}).get(space) or {}
    view = {**res, "evaluation": {**res.get("evaluation", {}), space: {}}}
    for name, r in res.get("evaluation", {}).get(space, {}).items():
        if name not in zoo:
            continue
        z = zoo[name]
        # the zoo may attack fewer images than the evaluation (zoo.n_images): its own N and prefix go with its bits
        rec = {**r, "per_image": dict(r.get("per_image") or {}), "n_attacked": z["n_attacked"],
               "n_prefix": z["n_prefix"], "attack_set": "worst case"}
        for key, bits in rec["per_image"].items():  # the noise control on the zoo's images (the first N of the same)
            if key.startswith("noise_survived_"):
                rec["per_image"][key] = stats.pack_bits(stats.unpack_bits(bits)[: z["n_attacked"]])
        for setting in ("small", "large"):
            w = z["settings"][setting]["attacks"]["worst case"]
            rec[f"dsr_{setting}"], rec[f"dsr_{setting}_ci"] = w["dsr"], w["dsr_ci"]
            rec[f"robust_{setting}"], rec[f"robust_{setting}_ci"] = w["robust"], w["robust_ci"]
            rec["per_image"][f"survived_{setting}"] = w["survived"]
        mn = z.get("min_norm") or {}
        for unit in ("px", "norm"):  # per image, the smaller L2 of the paper's attack and the minimum-norm one
            a, b = r.get(f"l2_all_{unit}"), mn.get(f"l2_all_{unit}")
            if a is not None and b is not None and len(a) == len(b):
                rec[f"l2_all_{unit}"] = [None if u is None and v is None else min(w for w in (u, v) if w is not None)
                                         for u, v in zip(a, b)]
            elif b is not None:
                rec[f"l2_all_{unit}"], rec["opt_n"] = b, mn.get("opt_n")
        view["evaluation"][space][name] = rec
    return view
