"""Units of work on a pool of Ray actors, results back in order, nothing lost when a worker dies.

A job is a sequence of independent `Unit`s (a camera-path segment, a video chunk with its warm-up frames,
one prompt's clip). `UnitRunner` creates the worker actors (each builds its model once, from a picklable
factory), keeps every worker busy with at most `per_worker` units in flight, and yields the results in
unit order as soon as the next one is ready, so the driver writes while the cluster works.

Faults: a worker that dies (process killed, node lost) takes its units with it; they go back to the front
of the queue, a replacement worker is started, and they run again elsewhere (up to `max_attempts` times
each). A unit that fails by itself (bad input in that chunk) raises `UnitFailed` naming the unit, after
every other unit is cancelled and the workers are killed.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from neuralframe import ctrlc
from neuralframe.errors import NeuralframeError, _describe


@dataclass(frozen=True)
class Unit:
    """One independent piece of a job: output frames [start, stop), after `warmup` frames before `start`
    that are processed only to warm the recurrent state (and not kept)."""

    index: int
    start: int
    stop: int
    warmup: int = 0
    label: str = ""

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def describe(self) -> str:
        if self.label:
            return f"unit {self.index} ({self.label})"
        return f"unit {self.index} (frames {self.start}-{self.stop - 1})"


class UnitFailed(NeuralframeError):
    """A unit failed for a reason of its own; the job stops."""

    def __init__(self, unit: Unit, error: BaseException):
        self.unit = unit
        self.error = error
        super().__init__(f"{unit.describe()} failed: {_describe(error)}")


def plan_units(total: int, workers: int, unit_frames: int | None = None, warmup: int = 0,
               per_worker: int = 3, min_frames: int = 1, max_frames: int = 64) -> list[Unit]:
    """Split `total` frames into units: `unit_frames` each, or about `per_worker` units per worker (between
    `min_frames` and `max_frames` frames). Each unit after the first warms up on the `warmup` frames before
    it."""
    if total <= 0:
        return []
    if unit_frames is None:
        unit_frames = max(min_frames, min(max_frames, math.ceil(total / (workers * per_worker))))
    units = []
    for i, start in enumerate(range(0, total, unit_frames)):
        stop = min(total, start + unit_frames)
        units.append(Unit(i, start, stop, warmup=min(warmup, start)))
    return units


class _Actor:
    """The body of a worker actor: builds the job's work object once and runs units on it."""

    def __init__(self, factory: Callable[[], Any], threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        with contextlib.suppress(Exception):
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        self.factory = factory
        self.work = None

    def hello(self) -> dict:
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname()}

    def setup(self, info: Any) -> Any:
        self.work = self.factory()
        return self.work.setup(info)

    def run(self, unit: Unit, payload: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        result = self.work.run(unit, payload)
        return result, time.perf_counter() - t0


@dataclass
class WorkerStats:
    """What one worker did (a replacement worker gets its own row)."""

    slot: int
    pid: int = 0
    host: str = ""
    units: int = 0
    frames: int = 0
    busy_s: float = 0.0
    died: bool = False

    def to_dict(self) -> dict:
        return {"worker": self.slot, "pid": self.pid, "host": self.host, "units": self.units, "frames": self.frames,
                "busy_s": round(self.busy_s, 3),
                "fps": round(self.frames / self.busy_s, 3) if self.busy_s > 0 else None, "died": self.died}


@dataclass
class _Worker:
    actor: Any
    stats: WorkerStats
    ready: Any  # the setup call's ref
    in_flight: int = 0
    alive: bool = True


@dataclass
class _Task:
    unit: Unit
    payload: Any  # an ObjectRef (kept for retries)
    attempts: int = 0


@dataclass
class RunnerReport:
    workers: list[WorkerStats] = field(default_factory=list)
    retried_units: int = 0
    replaced_workers: int = 0
    setup_s: float = 0.0  # starting the workers and loading their models
    wall_s: float = 0.0  # from the start to the last result, setup included
    frames: int = 0

    def to_dict(self) -> dict:
        return {"workers": [w.to_dict() for w in self.workers], "worker_count": sum(not w.died for w in self.workers),
                "retried_units": self.retried_units, "replaced_workers": self.replaced_workers,
                "setup_s": round(self.setup_s, 3), "wall_s": round(self.wall_s, 3), "frames": self.frames,
                "fps_total": round(self.frames / self.wall_s, 3) if self.wall_s > 0 else None,
                "fps_after_setup": round(self.frames / (self.wall_s - self.setup_s), 3)
                if self.wall_s > self.setup_s else None}


class UnitRunner:
    """Runs units on `workers` actors and yields `(unit, result)` in unit order (see the module docstring).

    Args:
        session: a `RaySession`.
        factory: a picklable callable that builds the work object in each worker: `setup(info) -> out_info`
            once, then `run(unit, payload) -> result` per unit (`result` should have a `__len__`: its frames).
        info: what `setup` gets (the input stream's description).
        workers: number of actors.
        cpus, gpus: resources each actor reserves (and CPU threads it uses).
        per_worker: units in flight per worker (2: the next unit's input is already there when one ends).
        max_attempts: tries per unit before the job fails because workers keep dying.
        on_submit: called with (unit, the worker's `WorkerStats`) when a unit is sent (tests kill workers
            from it).
    """

    def __init__(self, session, factory: Callable[[], Any], info: Any, workers: int, cpus: int = 1,
                 gpus: float = 0.0, per_worker: int = 2, max_attempts: int = 3,
                 on_submit: Callable[[Unit, WorkerStats], None] | None = None):
        self.session = session
        self.ray = session.ray
        self.factory = factory
        self.info = info
        self.n_workers = max(1, int(workers))
        self.cpus, self.gpus = int(cpus), float(gpus)
        self.per_worker = max(1, per_worker)
        self.max_attempts = max(1, max_attempts)
        self.on_submit = on_submit
        self.report = RunnerReport()
        self._workers: list[_Worker] = []
        self._queue: collections.deque[_Task] = collections.deque()
        self._in_flight: dict[Any, tuple[_Task, _Worker]] = {}
        self._done: dict[int, Any] = {}
        self._units: Iterator[tuple[Unit, Any]] | None = None
        self._exhausted = False
        self._next_out = 0
        self._t0 = 0.0
        self._closed = False
        self.out_info = None

    # workers ---------------------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        remote = self.ray.remote(_Actor).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0,
                                                 max_task_retries=0)
        actor = remote.remote(self.factory, self.cpus)
        self.session.actors.append(actor)
        worker = _Worker(actor, WorkerStats(slot=len(self.report.workers)), actor.setup.remote(self.info))
        self.report.workers.append(worker.stats)
        self._workers.append(worker)
        return worker

    def _wait_ready(self, workers: list[_Worker]) -> None:
        """Wait for the workers' setup; a setup that fails (a model folder that does not load) fails the job."""
        for w in workers:
            try:
                self.out_info = self._get(w.ready)
                hello = self._get(w.actor.hello.remote())
                w.stats.pid, w.stats.host = hello["pid"], hello["host"]
            except self._death_errors():
                self._retire(w)
            except self.ray.exceptions.RayTaskError as error:
                self.close()
                cause = getattr(error, "cause", None) or error
                if isinstance(cause, NeuralframeError):
                    raise cause from None
                raise NeuralframeError(f"a worker could not set up: {_describe(cause)}") from None

    def _get(self, ref) -> Any:
        """`ray.get`, waiting in short steps so that a deferred Ctrl-C is taken (`neuralframe.ctrlc`)."""
        while not self.ray.wait([ref], timeout=0.2)[0]:
            ctrlc.checkpoint()
        return self.ray.get(ref)

    def _death_errors(self) -> tuple[type[BaseException], ...]:
        ex = self.ray.exceptions
        kinds = [ex.RayActorError, ex.WorkerCrashedError, ex.ObjectLostError]
        for name in ("NodeDiedError", "OwnerDiedError", "ActorUnavailableError"):
            if hasattr(ex, name):
                kinds.append(getattr(ex, name))
        return tuple(kinds)

    def _retire(self, worker: _Worker) -> None:
        if worker.alive:
            worker.alive = False
            worker.stats.died = True
            with contextlib.suppress(Exception):
                self.ray.kill(worker.actor, no_restart=True)

    # running ---------------------------------------------------------------------------------------
    def start(self, units: Iterable[tuple[Unit, Any]]):
        """Start the workers (and wait for their setup); returns what their `setup` returned."""
        self._t0 = time.perf_counter()
        self._units = iter(units)
        self._wait_ready([self._spawn() for _ in range(self.n_workers)])
        if not any(w.alive for w in self._workers):
            self._replace_dead()
        self.report.setup_s = time.perf_counter() - self._t0
        return self.out_info

    def _replace_dead(self) -> None:
        dead = [w for w in self._workers if not w.alive]
        for w in dead:
            self._workers.remove(w)
        fresh = [self._spawn() for _ in dead]
        self.report.replaced_workers += len(fresh)
        self._wait_ready(fresh)

    def _pull(self) -> _Task | None:
        if self._queue:
            return self._queue.popleft()
        if self._exhausted:
            return None
        try:
            unit, payload = next(self._units)
        except StopIteration:
            self._exhausted = True
            return None
        return _Task(unit, self.ray.put(payload))

    def _fill(self) -> None:
        for w in sorted((w for w in self._workers if w.alive), key=lambda w: w.in_flight):
            while w.alive and w.in_flight < self.per_worker:
                task = self._pull()
                if task is None:
                    return
                task.attempts += 1
                ref = w.actor.run.remote(task.unit, task.payload)
                w.in_flight += 1
                self._in_flight[ref] = (task, w)
                if self.on_submit is not None:
                    self.on_submit(task.unit, w.stats)

    def results(self) -> Iterator[tuple[Unit, Any]]:
        """The units' results, in unit order, as they become ready."""
        while True:
            if self._next_out in self._done:
                unit, result = self._done.pop(self._next_out)
                self._next_out += 1
                yield unit, result
                continue
            self._fill()
            if not self._in_flight:
                if self._exhausted and not self._queue:
                    self.report.wall_s = time.perf_counter() - self._t0
                    return
                if not any(w.alive for w in self._workers):
                    self._replace_dead()
                    continue
            ready, _ = self.ray.wait(list(self._in_flight), num_returns=1, timeout=0.5)
            ctrlc.checkpoint()  # the job's main loop when the driver runs it (generate): Ctrl-C lands here
            for ref in ready:
                self._collect(ref)

    def _collect(self, ref) -> None:
        task, worker = self._in_flight.pop(ref)
        worker.in_flight -= 1
        try:
            result, busy = self.ray.get(ref)
        except self._death_errors():
            self._retire(worker)
            if task.attempts >= self.max_attempts:
                self.close()
                raise NeuralframeError(f"{task.unit.describe()}: its worker died {task.attempts} times; the "
                                       "job stops (check the cluster's memory and logs)") from None
            self.report.retried_units += 1
            self._queue.appendleft(task)
            # the dead worker's other units come back too, in any order: keep the queue in unit order
            self._queue = collections.deque(sorted(self._queue, key=lambda t: t.unit.index))
            self._replace_dead()
            return
        except self.ray.exceptions.RayTaskError as error:
            self.close()
            cause = getattr(error, "cause", None) or error
            raise UnitFailed(task.unit, cause) from None
        worker.stats.units += 1
        worker.stats.frames += task.unit.frames
        worker.stats.busy_s += busy
        self.report.frames += task.unit.frames
        self._done[task.unit.index] = (task.unit, result)

    def close(self) -> None:
        """Cancel what is in flight and kill the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self.report.wall_s:
            self.report.wall_s = time.perf_counter() - self._t0
        self._in_flight.clear()  # killing the workers below cancels their units
        for w in self._workers:
            with contextlib.suppress(Exception):
                self.ray.kill(w.actor, no_restart=True)
            w.alive = False
