"""How many compute threads a selftune process takes when it shares the CPU.

:mod:`selftune.hardware` says what the machine has (usable cores); this module shares those cores
out among the processes that compute at once: a training job's child, a `selftune train` run, the
serving engine of `selftune serve`, each a separate process with its own OpenMP thread team. Two
teams that each think they own every core collapse: an OpenMP parallel region ends when its slowest
thread does, so a thread preempted by the other team stalls its whole team, thousands of times a
step (two trainings on 2 cores ran 7x less work per second together than one after the other).
Threads that spin while they wait make it worse.

So, honest and simple:

- ``available`` = usable cores - the cores the operator reserves (``SELFTUNE_RESERVED_CORES``,
  ``--reserve-cores``); at least one.
- ``outside`` = whole cores kept busy by other programs: the 1-minute load average less the threads
  selftune's own compute processes run; at most ``available - 1``.
- The rest is split evenly among the selftune compute processes that are working now (found in a
  small registry of files, one per process, in a per-user runtime folder): ``threads =
  max(1, (available - outside) // sharers)``. A process re-checks every few seconds while it works
  (the trainer after a step, the engine before a batch step) and changes its thread count.
- OpenMP keeps its default waiting (a short spin, then sleep). ``OMP_WAIT_POLICY=PASSIVE`` was tried
  and measured: a training run alone went 1.7x slower (295 against 518 tokens/s, 2-core AVX512-BF16
  EPYC), and with the cores split no team spins on a core another process needs. An operator's own
  ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` pass through to every process.

``SELFTUNE_THREAD_POLICY=off`` gives the old behaviour (every process one thread per usable core,
OpenMP's default spinning), for before/after measurements.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESERVED_ENV = "SELFTUNE_RESERVED_CORES"
POLICY_ENV = "SELFTUNE_THREAD_POLICY"  # "share" (default) or "off"
RUNTIME_ENV = "SELFTUNE_RUNTIME_DIR"  # where the registry lives (default: a per-user folder in /tmp)
REFRESH_SECONDS = 2.0  # how often a working process re-checks its share
STALE_SECONDS = 120.0  # an entry not refreshed for this long is a process that stopped computing
KINDS = ("train", "job", "engine")


def policy_on() -> bool:
    return os.environ.get(POLICY_ENV, "share").strip().lower() not in ("off", "0", "false", "no")


def reserved_cores() -> int:
    """Cores the operator keeps for other programs (``SELFTUNE_RESERVED_CORES``, checked by the settings)."""
    from pydantic import ValidationError

    from selftune.config import get_settings
    from selftune.errors import SelftuneError

    try:
        return get_settings().reserved_cores
    except ValidationError as exc:
        problem = "; ".join(f"SELFTUNE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise SelftuneError(f"invalid setting: {problem}") from None


# ---- the rule ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """Threads for one process, and the figures it came from (``selftune doctor`` prints them)."""

    threads: int
    usable: int  # cores this process may run on (affinity, cgroup quota)
    reserved: int  # kept for other programs by the operator
    outside: int  # whole cores other programs keep busy (load average)
    sharers: int  # selftune compute processes splitting the rest, this one included
    why: str
    others: list[dict] = field(default_factory=list)  # the other selftune compute processes seen


def decide(usable: int, *, reserved: int = 0, sharers: int = 1, load: float | None = None,
           own_load: int = 0) -> Decision:
    """Threads for one of ``sharers`` selftune processes computing at once on ``usable`` cores.

    ``load``: the 1-minute load average (None: unknown); ``own_load``: the threads selftune's working
    processes already run, which the load average counts too."""
    usable, sharers = max(1, usable), max(1, sharers)
    available = max(1, usable - max(0, reserved))
    outside = 0 if load is None else max(0, min(available - 1, int(load - own_load)))
    free = available - outside
    threads = max(1, free // sharers)
    parts = [f"{usable} usable core(s)"]
    if reserved > 0:
        parts.append(f"{reserved} reserved" + (" (all of them: 1 used anyway)" if reserved >= usable else ""))
    if outside:
        parts.append(f"{outside} busy with other programs (load {load:.1f})")
    if sharers > 1:
        parts.append(f"shared by {sharers} selftune processes")
    return Decision(threads, usable, max(0, reserved), outside, sharers, ", ".join(parts))


# ---- the registry of selftune compute processes -------------------------------------------------------
def runtime_dir() -> Path:
    configured = os.environ.get(RUNTIME_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"selftune-{os.getuid()}-compute"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def working_processes(directory: Path | None = None, *, exclude: str | None = None) -> list[dict]:
    """The selftune compute processes working now: their entries, less dead and stale ones (a dead
    process's entry is removed)."""
    directory = directory or runtime_dir()
    found = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    for name in names:
        if not name.endswith(".json") or name == exclude:
            continue
        path = directory / name
        try:
            entry = json.loads(path.read_text())
            fresh = time.time() - path.stat().st_mtime < STALE_SECONDS
        except (OSError, ValueError):
            continue  # being replaced, or not ours
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            continue
        if not _alive(entry["pid"]):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        if entry.get("active") and fresh:
            found.append(entry)
    return found


class ComputeShare:
    """This process's share of the CPU, kept up to date while it works.

    ``apply`` and ``refresh`` set torch's threads *for the calling thread* (OpenMP's thread count is
    per thread): call them from the thread that computes (the training loop, the engine's scheduler)."""

    def __init__(self, kind: str, *, processes: int = 1, active: bool = True, directory: Path | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown compute process kind {kind!r}")
        self.kind, self.processes, self.active = kind, max(1, processes), active
        self.directory = directory or runtime_dir()
        self.name = f"{os.getpid()}-{kind}.json"
        self.threads = 0
        self._checked = 0.0
        self._written: tuple | None = None
        atexit.register(self.close)

    def decision(self) -> Decision:
        from selftune.hardware import physical_cores

        usable = physical_cores()
        if not policy_on():
            return Decision(max(1, usable // self.processes), usable, 0, 0, self.processes,
                            f"{POLICY_ENV}=off: one thread per usable core, whatever else runs")
        others = working_processes(self.directory, exclude=self.name)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        own_load = sum(int(o.get("threads", 1)) for o in others) + (self.threads if self.active else 0)
        sharers = max(self.processes, len(others) + 1)
        made = decide(usable, reserved=reserved_cores(), sharers=sharers, load=load, own_load=own_load)
        return Decision(**{**asdict(made), "others": others})

    def apply(self) -> int:
        """Decide now, set torch's threads for this thread, and record this process in the registry."""
        import torch

        self._checked = time.monotonic()
        threads = self.decision().threads
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.threads = threads
        self._record()
        return threads

    def refresh(self) -> int:
        """:meth:`apply`, at most every REFRESH_SECONDS (cheap enough to call every step)."""
        if time.monotonic() - self._checked >= REFRESH_SECONDS:
            return self.apply()
        return self.threads

    def set_active(self, active: bool) -> None:
        """Working (counted by the others) or idle (not counted); applies at once when it changes."""
        if active != self.active:
            self.active = active
            if active:
                self.apply()
            else:
                self._record()
        elif active:
            self.refresh()

    def refreshing(self, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        """``should_stop`` that first refreshes the share: the trainer polls it after every step."""
        def poll() -> bool:
            self.refresh()
            return should_stop()
        return poll

    def _record(self) -> None:
        if not policy_on():
            return
        entry = {"pid": os.getpid(), "kind": self.kind, "threads": self.threads, "active": self.active}
        key = tuple(entry.values())
        path = self.directory / self.name
        if key == self._written and time.time() - _mtime(path) < STALE_SECONDS / 4:
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(entry))
            os.replace(temporary, path)  # readers see the old entry or the new one
            self._written = key
        except OSError:
            pass  # the registry is advice: without it this process still runs, on its own decision

    def close(self) -> None:
        """Leave the registry (the work is done)."""
        with contextlib.suppress(OSError):
            (self.directory / self.name).unlink()
        self._written = None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def report() -> dict:
    """What a new compute process would take now, for ``selftune doctor``."""
    decision = ComputeShare("train").decision()
    return {**asdict(decision), "policy": "share" if policy_on() else "off",
            "wait_policy": os.environ.get("OMP_WAIT_POLICY") or (
                f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in os.environ
                else "OpenMP default (a short spin, then sleep)"),
            "registry": str(runtime_dir())}
