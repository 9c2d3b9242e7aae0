"""Resumable runs: a stage trained unit by unit (epochs, iterations), checkpointed as it goes and cached when done.

One loop serves pretraining and the fine-tuning runs: open the stage's artifact; when it finished,
load its final state and result; else restore the progress checkpoint and run the remaining units,
each seeded by its index (`unit_seed`), so that a run resumed after an interruption ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tqdm.auto import tqdm

from satnb.core.fingerprint import Code
from satnb.core.store import ArtifactError, Store, restoring

RESULT_NUMBERS = ("train_seconds", "eval_seconds")


class Stateful(Protocol):
    """What a run checkpoints: a module, an optimiser, or anything with their state_dict methods."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


def unit_seed(seed: int, t: int) -> int:
    """The seed of unit (or step) t of a run seeded `seed`: a resumed run replays the same unit."""
    return seed * 100_003 + t


@dataclass
class Progress:
    """How far a run got: units done, a history row per unit, evaluation rows and wall times (all checkpointed)."""

    done: int = 0
    history: list[dict] = field(default_factory=list)
    trajectory: list[dict] = field(default_factory=list)  # one row per evaluation point
    train_seconds: float = 0.0  # the units' wall time
    eval_seconds: float = 0.0  # the evaluations' wall time
    evaluated: int = -1  # the last evaluation point that ran


class Run:
    """One resumable stage: its artifact, the state it checkpoints and its unit-by-unit loop.

    `keep` (the trained modules) is saved in the final checkpoint and in every progress checkpoint;
    `resume` (optimiser, memory banks, libraries) only in progress checkpoints, in that order.
    """

    def __init__(self, store: Store, stage: str, key: dict, data_fingerprint: str = "", *, code: Code,
                 keep: dict[str, Stateful], resume: dict[str, Stateful] | None = None, writes: bool = True) -> None:
        self.store = store
        self.art = store.artifact(stage, key, data_fingerprint, code=code)
        self.keep = keep
        self.writes = writes  # False on the ranks of a data-parallel run that read checkpoints but never write them
        self.state = {**keep, **(resume or {})}

    def cached(self, numbers: tuple[str, ...] = ()) -> dict | None:
        """The validated result of the finished stage, its final state loaded into `keep`; None when unfinished."""
        final = self.store.load_checkpoint(self.art)
        if final is None:
            return None
        result = self.store.load_result(self.art, required=("history", "trajectory"),
                                        numbers=RESULT_NUMBERS + tuple(numbers))
        if result is None:
            raise ArtifactError(f"{self.art.final} has no result beside it; delete {self.art.path} to recompute it")
        with restoring(self.art.final):
            for name, obj in self.keep.items():
                obj.load_state_dict(final[name])
        return result

    def run(self, total: int, unit: Callable[[int], dict], *, every: int = 1,
            evaluate: Callable[[int, Progress], dict] | None = None, unit_name: str = "epoch", desc: str = "",
            progress: bool = True, after_unit: Callable[[int, dict], None] | None = None) -> Progress:
        """Run the units not done yet (resuming from the progress checkpoint); checkpoint every `every` and the last.

        `unit(t)` trains unit t and returns its history row (its training `seconds` are measured
        unless it reports them, e.g. when it also draws a learning curve). `evaluate(t, progress)`,
        when given, returns the trajectory row of point t: at 0, every `every` units and at the end,
        each after the checkpoint of its units, so an interrupted evaluation reruns on resume without
        retraining. `after_unit(done, row)` runs after each unit's checkpoint and evaluation.
        """
        p = self._restore()
        bar = tqdm(total=total, initial=p.done, desc=desc, disable=not progress)
        self._evaluate(p, evaluate, total, every)
        while p.done < total:
            t0 = time.perf_counter()
            record = {unit_name: p.done + 1, **unit(p.done)}
            record.setdefault("seconds", time.perf_counter() - t0)
            p.train_seconds += record["seconds"]
            p.history.append(record)
            p.done += 1
            bar.update()
            if record.get("loss") is not None:
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if p.done % every == 0 or p.done == total:
                self._save(p)
            self._evaluate(p, evaluate, total, every)
            if after_unit is not None:
                after_unit(p.done, record)
        bar.close()
        return p

    def finish(self, p: Progress, **record: Any) -> dict:
        """Save the result (the run's history, trajectory and times, plus `record`) and the final state; return it."""
        result = {"history": p.history, "trajectory": p.trajectory, "train_seconds": p.train_seconds,
                  "eval_seconds": p.eval_seconds, **record}
        if self.writes:
            self.store.save_result(self.art, result)
            self.store.save_checkpoint(self.art, {name: obj.state_dict() for name, obj in self.keep.items()},
                                       final=True)
        return result

    def _evaluate(self, p: Progress, evaluate: Callable[[int, Progress], dict] | None, total: int, every: int) -> None:
        if evaluate is None or p.evaluated == p.done or (p.done % every and p.done != total):
            return
        t0 = time.perf_counter()
        p.trajectory.append(evaluate(p.done, p))
        p.eval_seconds += time.perf_counter() - t0
        p.evaluated = p.done
        self._save(p)

    def _save(self, p: Progress) -> None:
        if not self.writes:
            return
        self.store.save_checkpoint(self.art, {**{name: obj.state_dict() for name, obj in self.state.items()},
                                              "progress": asdict(p)})

    def _restore(self) -> Progress:
        saved = self.store.load_checkpoint(self.art, final=False)
        if saved is None:
            return Progress()
        with restoring(self.art.progress):
            for name, obj in self.state.items():
                obj.load_state_dict(saved[name])
            return Progress(**saved["progress"])
