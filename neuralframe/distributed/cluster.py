"""Connecting to Ray: a local Ray started for one job (and fully removed after it), or an existing cluster.

`--ray` (or `--ray local`) starts a local Ray with this machine's cores in a temporary folder of its own;
when the job ends (finished, failed or Ctrl-C) its processes are shut down and the folder is removed. The
folder is made in NEURALFRAME_RAY_TMPDIR, else the system's temporary folder; when Ray's Unix socket paths
under it would be too long for the system (see `longest_socket_path`), in a short private folder under /tmp.
`--ray ADDRESS` (`auto`, `HOST:PORT` or `ray://HOST:10001`) joins a running cluster and leaves it running;
every node needs neuralframe installed (the same version) and the input files are read by the driver, so
only the driver needs them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from neuralframe import ctrlc
from neuralframe.errors import InputError, MissingDependencyError

INSTALL_HINT = "pip install 'neuralframe[distributed]'"
TMPDIR_ENV = "NEURALFRAME_RAY_TMPDIR"  # where a local Ray keeps its session folder (default: the system's)
# the Unix sockets a local Ray (head node) binds in <temp>/session_<date>_<pid>/sockets/ (ray._private.node)
SOCKET_NAMES = ("plasma_store", "raylet")
SHORT_BASES = ("/tmp", "/var/tmp")  # where a private folder goes when the preferred one is too deep


def require_ray():
    """The `ray` module, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a job runs.

    Args:
        address: "local" (or None) starts a local Ray with `num_cpus` cores (default: all of this machine's);
            anything else is passed to `ray.init(address=...)` to join a running cluster.
        workers: number of worker actors (default: the cluster's CPUs // `cpus_per_worker`, capped by the
            number of units).
        cpus_per_worker: CPU threads each worker uses (and reserves from Ray).
        gpus_per_worker: GPUs each worker reserves (default: 1 when the cluster has GPUs and the job can use
            one, else 0).
        num_cpus: cores of a local Ray (None: os.cpu_count()).
    """

    address: str | None = "local"
    workers: int | None = None
    cpus_per_worker: int = 1
    gpus_per_worker: float | None = None
    num_cpus: int | None = None

    def check(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
        if self.cpus_per_worker < 1:
            raise InputError(f"--cpus-per-worker must be at least 1, got {self.cpus_per_worker}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise InputError(f"GPUs per worker must be >= 0, got {self.gpus_per_worker}")

    @property
    def local(self) -> bool:
        return self.address in (None, "", "local")


@dataclass
class RaySession:
    """A connected Ray: its resources, and the actors this job created (killed when the session ends)."""

    ray: Any
    settings: RaySettings
    started_local: bool
    temp_dir: str | None = None
    actors: list = field(default_factory=list)

    def cluster_cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def cluster_gpus(self) -> int:
        return int(self.ray.cluster_resources().get("GPU", 0))

    def worker_count(self, units: int) -> int:
        """Workers for a job of `units` units: the setting, or as many as the cluster's CPUs hold."""
        wanted = self.settings.workers or max(1, self.cluster_cpus() // self.settings.cpus_per_worker)
        return max(1, min(wanted, units))

    def gpus_per_worker(self, can_use_gpu: bool) -> float:
        if self.settings.gpus_per_worker is not None:
            return self.settings.gpus_per_worker
        return 1.0 if can_use_gpu and self.cluster_gpus() > 0 else 0.0

    def kill_actors(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self.actors.clear()


def socket_path_limit() -> int:
    """The longest Unix socket path, in bytes, that Ray accepts here (sun_path less its NUL: 103 on macOS, 107
    elsewhere), as ray._private.utils.validate_socket_filepath checks it."""
    return (104 if sys.platform == "darwin" else 108) - 1


def longest_socket_path(temp_dir: str, pid: int | None = None) -> int:
    """Length in bytes of the longest socket path a local Ray started by process `pid` (default: this one)
    creates under `temp_dir`: <temp_dir>/session_<%Y-%m-%d_%H-%M-%S_%f>_<pid>/sockets/<name>."""
    date = datetime.datetime.today().strftime("%Y-%m-%d_%H-%M-%S_%f")
    session = f"session_{date}_{os.getpid() if pid is None else pid}"
    return max(len(os.fsencode(os.path.join(temp_dir, session, "sockets", name))) for name in SOCKET_NAMES)


def local_temp_dir() -> str:
    """A new private folder (mode 0700) for a local Ray's session, whose socket paths fit the system's limit:
    in NEURALFRAME_RAY_TMPDIR, else the system's temporary folder; when that one is too deep, under /tmp (or
    /var/tmp). The caller removes it."""
    preferred = os.path.abspath(os.environ.get(TMPDIR_ENV) or tempfile.gettempdir())
    for base in (preferred, *SHORT_BASES):
        try:
            os.makedirs(base, exist_ok=True)
            folder = tempfile.mkdtemp(prefix="nf-", dir=base)
        except OSError:
            continue
        if longest_socket_path(folder) <= socket_path_limit():
            return folder
        _remove(folder)  # measured on the folder itself: mkdtemp's name length is its own business
    raise InputError(f"could not make a folder for the local Ray whose socket paths fit in {socket_path_limit()} "
                     f"bytes, in '{preferred}' or {' or '.join(SHORT_BASES)}: set {TMPDIR_ENV} to a short writable "
                     "folder")


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[RaySession]:
    """Connect (or start a local Ray), yield the session, and on the way out kill the job's actors and, for
    a local Ray this started, shut it down and remove its temporary folder.

    Ctrl-C is deferred for the whole session (`neuralframe.ctrlc`): it raises at the job's checkpoints
    (waiting for workers and results, the pipeline's wait), never inside Ray's start, its threads' callbacks
    or its shut-down, so the clean-up above always runs."""
    settings.check()
    with ctrlc.deferred():
        yield from _ray_session(settings)


def _ray_session(settings: RaySettings) -> Iterator[RaySession]:
    ray = require_ray()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if ray.is_initialized():  # a caller (a test, a notebook) already connected: use that Ray, leave it up
        session = RaySession(ray, settings, started_local=False)
        try:
            yield session
        finally:
            session.kill_actors()
        return
    temp_dir = None
    try:
        if settings.local:
            # Ray lowers its workers' priority (nice 15) so that its own services stay responsive on a shared
            # node; a local Ray started for one job is that job, and runs at the command's priority
            os.environ.setdefault("RAY_worker_niceness", "0")
            temp_dir = local_temp_dir()
            ray.init(num_cpus=settings.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False, _temp_dir=temp_dir, namespace="neuralframe")
        else:
            ray.init(address=settings.address, log_to_driver=False, configure_logging=False, namespace="neuralframe")
    except OSError as error:
        _remove(temp_dir)
        if "path length" in str(error):
            # only a Ray whose socket names outgrow SOCKET_NAMES gets here: local_temp_dir measured the rest
            raise InputError(f"the local Ray's socket paths under '{temp_dir}' are too long for the system: set "
                             f"{TMPDIR_ENV} to a shorter folder (for example /tmp)") from None
        raise InputError(f"could not start a local Ray: {error}") from None
    except (ConnectionError, RuntimeError, ValueError) as error:
        _remove(temp_dir)
        where = "a local Ray" if settings.local else f"the Ray cluster at '{settings.address}'"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"could not start {where}: {first} (check the address and that `ray status` "
                         "works there)") from None
    session = RaySession(ray, settings, started_local=settings.local, temp_dir=temp_dir)
    try:
        ctrlc.checkpoint()  # a Ctrl-C while Ray started
        yield session
    finally:
        session.kill_actors()
        with contextlib.suppress(Exception):
            ray.shutdown()
        if temp_dir is not None:
            _wait_for_processes(temp_dir)
            _remove(temp_dir)


def _wait_for_processes(temp_dir: str, timeout: float = 10.0) -> None:
    """Wait until no process started for this local Ray (they name its folder) is left; kill stragglers."""
    import signal

    deadline = time.monotonic() + timeout
    while True:
        pids = ray_processes(temp_dir)
        if not pids:
            return
        if time.monotonic() > deadline:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def ray_processes(temp_dir: str) -> list[int]:
    """PIDs of this machine's processes whose command line names `temp_dir` (Linux /proc; [] elsewhere)."""
    pids = []
    needle = temp_dir.encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def _remove(path: str | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
