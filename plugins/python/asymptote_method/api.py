"""The types a method author works with; they mirror plugins/sdk in Go."""

from __future__ import annotations

import abc
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

# Well-known metric names for a method's accounting; analysis reads them by
# these names (plugins/sdk/method.go).
METRIC_PARAMS = "params"
METRIC_TOKENS = "tokens"
METRIC_UNIQUE_TOKENS = "unique_tokens"
METRIC_EPOCHS = "epochs"
METRIC_FLOPS = "flops"
METRIC_MEMBERS = "members"
METRIC_TRAIN_LOSS = "train_loss"
METRIC_VAL_LOSS = "val_loss"


class ParamError(Exception):
    """A parameter the method cannot accept.

    The attempt fails without retry (the host sees INVALID_ARGUMENT with a
    google.rpc.BadRequest naming the parameter), and the message reaches
    the user as is.
    """

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f'parameter "{param}": {reason}')
        self.param = param
        self.reason = reason


class Preempted(Exception):
    """The attempt was interrupted through no fault of the method (its host
    is being preempted, say) and should run again.

    Raised out of run, the host sees ABORTED with a PREEMPTED detail: the
    agent reports the attempt lost and it runs again, on any agent, without
    counting against the study's retries.
    """


class Cancelled(Exception):
    """Raised by the SDK when an attempt was cancelled or passed its deadline.

    Methods need not catch it: raised out of run, it ends the attempt with
    CANCELLED (or DEADLINE_EXCEEDED), which is what the host expects.
    """

    def __init__(self, reason: str, deadline: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.deadline = deadline


class CancelEvent(threading.Event):
    """A threading.Event set when the attempt must stop.

    The SDK sets it when the host calls CancelTrial, when the RunTrial
    stream ends early (the host went away), when the request's deadline
    passes, and when the host shuts the plugin down. A method polls
    is_set() (or calls check()) between steps and returns promptly: the host
    kills the process if the method has not returned two seconds after
    cancelling it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.reason = ""
        self.deadline_exceeded = False

    def cancel(self, reason: str, deadline: bool = False) -> None:
        """Sets the event, keeping the first reason given."""
        with self._lock:
            if not self.is_set():
                self.reason = reason
                self.deadline_exceeded = deadline
                self.set()

    def check(self) -> None:
        """Raises Cancelled when the event is set."""
        if self.is_set():
            raise Cancelled(self.reason or "cancelled", self.deadline_exceeded)


@dataclass(frozen=True)
class ParamInfo:
    """Documents one parameter.

    default is None when the parameter is required, unless optional is set:
    then it may be omitted and the method derives its value from others.
    """

    name: str
    type: str  # "float", "int", "string" or "bool"
    default: Any = None
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Info:
    """Describes a method: its name as studies refer to it, its version (part
    of every trial's identity), one line for `asymptote methods`, and the
    parameters it reads."""

    name: str
    version: str
    description: str = ""
    params: Sequence[ParamInfo] = ()


_MISSING = object()


class NoCheckpoints(Exception):
    """Raised by TrialRequest.new_checkpoint when the host keeps no
    checkpoints for this attempt; carry on without saving."""


@dataclass(frozen=True)
class Checkpoint:
    """A saved state of a trial: the step it was taken after (a resumed
    attempt continues with step + 1), the metrics reported with that step,
    and the directory holding its files on this host (read only)."""

    step: int
    metrics: Mapping[str, float]
    dir: str


class _CheckpointState:
    """What a request shares with the server running it: the root under
    which checkpoints go, and whether the host asked for one now."""

    def __init__(self, root: str = "") -> None:
        self.root = root
        self.wanted = threading.Event()
        self._lock = threading.Lock()
        self._saved = 0

    def next_dir(self, step: int) -> str:
        with self._lock:
            self._saved += 1
            n = self._saved
        self.wanted.clear()
        path = os.path.join(self.root, f"step-{int(step)}-{n}")
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path


@dataclass
class TrialRequest:
    """One attempt of one trial.

    params holds the resolved parameters decoded from JSON: numbers are
    floats or ints, strings and bools keep their types. Read them with
    float, int, string and boolean, which apply defaults and raise
    ParamError with clear messages. threads is the CPU thread budget (at
    least 1); gpus lists the GPU indices assigned (CUDA_VISIBLE_DEVICES
    already restricts the process to them); deadline is a Unix time or None.
    """

    study: str = ""
    trial_id: str = ""
    attempt: int = 1
    params: dict = field(default_factory=dict)
    seed: int = 0
    threads: int = 1
    gpus: list = field(default_factory=list)
    deadline: Optional[float] = None
    # The study's configuration of the method (the command section for
    # the command method), decoded from JSON; empty for most methods.
    config: dict = field(default_factory=dict)
    # The checkpoint this attempt continues from, its files already on
    # this host; None starts the trial from step 0.
    resume: Optional[Checkpoint] = None
    _checkpoints: _CheckpointState = field(default_factory=_CheckpointState, repr=False)

    def keeps_checkpoints(self) -> bool:
        """Reports whether the host keeps checkpoints for this attempt."""
        return bool(self._checkpoints.root)

    def new_checkpoint(self, step: int) -> str:
        """Returns a new empty directory for a checkpoint taken after step.

        Write the checkpoint's files into it, then pass it to report with
        that step's metrics (report(step, values, checkpoint=path)); the
        host uploads it and deletes it. Raises NoCheckpoints when the host
        keeps none."""
        if not self._checkpoints.root:
            raise NoCheckpoints("the host keeps no checkpoints for this attempt")
        return self._checkpoints.next_dir(step)

    def checkpoint_wanted(self) -> bool:
        """Reports whether the host asked for a checkpoint now (it is about
        to stop the attempt); save one at the next safe point. It turns
        false again with the next new_checkpoint."""
        return bool(self._checkpoints.root) and self._checkpoints.wanted.is_set()

    def has(self, name: str) -> bool:
        """Reports whether the request sets name."""
        return name in self.params

    def float(self, name: str, default: float, lo: float = -math.inf, hi: float = math.inf) -> float:
        """Returns the numeric parameter name (default when absent), which
        must be finite and lie in [lo, hi]."""
        v = self.params.get(name, _MISSING)
        if v is _MISSING:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ParamError(name, f"want a number, got {type(v).__name__} {v!r}")
        f = float(v)
        if not math.isfinite(f):
            raise ParamError(name, "want a finite number")
        if f < lo or f > hi:
            raise ParamError(name, f"{f:g} is out of range; want a number in [{lo:g}, {hi:g}]")
        return f

    def int(self, name: str, default: int, lo: int = -(1 << 53), hi: int = 1 << 53) -> int:
        """Returns the integer parameter name (default when absent), which
        must lie in [lo, hi]. A number with a fractional part is an error."""
        if name not in self.params:
            return default
        f = self.float(name, float(default))
        if f != math.trunc(f) or abs(f) > 1 << 53:
            raise ParamError(name, f"want an integer, got {f:g}")
        i = int(f)
        if i < lo or i > hi:
            raise ParamError(name, f"{i} is out of range; want an integer in [{lo}, {hi}]")
        return i

    def string(self, name: str, default: str) -> str:
        """Returns the string parameter name, or default when absent."""
        v = self.params.get(name, _MISSING)
        if v is _MISSING:
            return default
        if not isinstance(v, str):
            raise ParamError(name, f"want a string, got {type(v).__name__} {v!r}")
        return v

    def boolean(self, name: str, default: bool) -> bool:
        """Returns the boolean parameter name, or default when absent."""
        v = self.params.get(name, _MISSING)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            raise ParamError(name, f"want true or false, got {type(v).__name__} {v!r}")
        return v

    def check_known(self, known: Sequence[ParamInfo]) -> None:
        """Raises ParamError for a parameter not in known, so that a misspelt
        name fails the trial instead of silently running with a default."""
        names = [p.name for p in known]
        unknown = sorted(set(self.params) - set(names))
        if unknown:
            raise ParamError(unknown[0], "unknown parameter; this method takes " + ", ".join(names))


# Report sends one step's metrics to the host, with the directory of a
# checkpoint taken after that step as an optional third argument
# (checkpoint=...). It raises Cancelled when the attempt was cancelled (so
# a method that reports often stops without polling) and an Exception when
# the host can no longer receive them.
Report = Callable[..., None]


class Method(abc.ABC):
    """A training or evaluation method, served by serve().

    One process serves many trials, one after another, so run must be safe
    to call again after it returns. An optional start() method, when
    defined, runs once before the handshake (for example to load a data
    set every trial shares); an exception from it ends the process with its
    message on stderr.
    """

    @abc.abstractmethod
    def info(self) -> Info:
        """Describes the method and the parameters it accepts."""

    @abc.abstractmethod
    def run(self, request: TrialRequest, report: Report, cancelled: CancelEvent) -> Mapping[str, float]:
        """Runs one attempt of a trial and returns its final metrics.

        Call report(step, values) for each step's metrics. Return (or raise
        Cancelled, for example through cancelled.check()) promptly once
        cancelled is set. Raise ParamError for parameters the method
        rejects; any other exception fails the attempt, which the study may
        retry.
        """
