"""The plugin side of the method protocol: go-plugin's handshake and
services, and MethodService adapted to a Method.

This is the Python counterpart of plugins/sdk's Serve. It follows
go-plugin's contract for plugins in other languages: check the magic
cookie, serve gRPC with the health service "plugin", GRPCController and
GRPCStdio next to the app's MethodService, print one handshake line
(CORE|APP|NETWORK|ADDR|grpc) on stdout, and log to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import signal
import sys
import threading
import time
from concurrent import futures
from typing import Any, Iterator, Mapping, NamedTuple, NoReturn, Optional

import grpc
from google.protobuf import any_pb2

from . import log as _log
from ._pb import goplugin_pb2, goplugin_pb2_grpc, health_pb2, health_pb2_grpc
from ._pb import method_pb2, method_pb2_grpc, rpc_status_pb2
from .api import Cancelled, CancelEvent, Checkpoint, Info, Method, ParamError, Preempted, TrialRequest, _CheckpointState

# The handshake shared with the agent (plugins/sdk.Handshake). The cookie is
# not a secret: it only stops a plugin from being run by hand.
MAGIC_COOKIE_KEY = "ASYMPTOTE_METHOD_PLUGIN"
MAGIC_COOKIE_VALUE = "3c9d6e2a51f04b78a6e1d0f9b2c47e85"
# PROTOCOL_VERSION is the method protocol's version (plugins/sdk.ProtocolVersion).
PROTOCOL_VERSION = 1
# CORE_PROTOCOL_VERSION is go-plugin's own handshake version.
CORE_PROTOCOL_VERSION = 1

# The name under which go-plugin's host pings a plugin's health.
HEALTH_SERVICE = "plugin"

# Qualifies reasons in google.rpc.ErrorInfo details (plugins/sdk.errorDomain).
ERROR_DOMAIN = "asymptote.dev"

_TYPE_PREFIX = "type.googleapis.com/google.rpc."
_STATUS_TRAILER = "grpc-status-details-bin"

_log_sdk = _log.logger("sdk")


class _Status(NamedTuple):
    """A grpc.Status for ServicerContext.abort_with_status."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def rich_status(code: grpc.StatusCode, message: str, details: tuple = ()) -> _Status:
    """Returns a status carrying a google.rpc.Status in the
    grpc-status-details-bin trailer, as grpc-go's status package reads it.

    details are (google.rpc type name, message) pairs, for example
    ("BadRequest", rpc_status_pb2.BadRequest(...)).
    """
    st = rpc_status_pb2.Status(code=code.value[0], message=message)
    for name, msg in details:
        st.details.append(any_pb2.Any(type_url=_TYPE_PREFIX + name, value=msg.SerializeToString()))
    return _Status(code, message, ((_STATUS_TRAILER, st.SerializeToString()),))


def status_for(exc: BaseException, cancelled: CancelEvent) -> _Status:
    """Maps an exception raised by a method to the status the host expects
    (plugins/sdk/status.go): ParamError is INVALID_ARGUMENT with a
    BadRequest naming the parameter; Cancelled, or any exception raised
    after the attempt was cancelled, is CANCELLED or DEADLINE_EXCEEDED;
    anything else is UNKNOWN with the exception's type and text."""
    if isinstance(exc, ParamError):
        br = rpc_status_pb2.BadRequest()
        br.field_violations.add(field=exc.param, description=exc.reason)
        return rich_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc), (("BadRequest", br),))
    if isinstance(exc, Preempted):
        info = rpc_status_pb2.ErrorInfo(reason="PREEMPTED", domain=ERROR_DOMAIN)
        text = f"preempted: {exc}" if str(exc) else "preempted"
        return rich_status(grpc.StatusCode.ABORTED, text, (("ErrorInfo", info),))
    if isinstance(exc, Cancelled) or cancelled.is_set():
        deadline = exc.deadline if isinstance(exc, Cancelled) else cancelled.deadline_exceeded
        reason = exc.reason if isinstance(exc, Cancelled) else (cancelled.reason or "cancelled")
        code = grpc.StatusCode.DEADLINE_EXCEEDED if deadline else grpc.StatusCode.CANCELLED
        return _Status(code, reason, ())
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _Status(grpc.StatusCode.UNKNOWN, text, ())


def request_from_proto(msg: Any) -> TrialRequest:
    """Decodes a RunTrialRequest; parameters that are not a JSON object
    raise ParamError."""
    params: Any = {}
    if msg.params_json:
        try:
            params = json.loads(msg.params_json)
        except ValueError as e:
            raise ParamError("", f"parameters are not a JSON object: {e}") from e
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ParamError("", "parameters are not a JSON object")
    deadline = None
    if msg.HasField("deadline"):
        deadline = msg.deadline.seconds + msg.deadline.nanos / 1e9
    config: Any = {}
    if msg.config_json:
        try:
            config = json.loads(msg.config_json)
        except ValueError as e:
            raise ParamError("", f"the method configuration is not a JSON object: {e}") from e
        if not isinstance(config, dict):
            raise ParamError("", "the method configuration is not a JSON object")
    resume = None
    if msg.HasField("resume"):
        resume = Checkpoint(step=msg.resume.step, metrics=dict(msg.resume.metrics), dir=msg.resume.dir)
    return TrialRequest(study=msg.study, trial_id=msg.trial_id, attempt=msg.attempt, params=params,
                        seed=msg.seed, threads=max(msg.threads, 1), gpus=list(msg.gpus), deadline=deadline,
                        config=config, resume=resume, _checkpoints=_CheckpointState(msg.checkpoint_root))


def _check_checkpoint_dir(root: str, path: str) -> None:
    """Refuses a checkpoint directory that is not strictly inside root: the
    host deletes it after its upload."""
    if not root:
        raise ValueError(f"a checkpoint was reported ({path!r}), but the host keeps none for this attempt")
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root or real == real_root or os.path.islink(path):
        raise ValueError(f"checkpoint directory {path!r} is not inside {root!r}; use the path new_checkpoint returned")
    if not os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is not a directory")


def info_to_proto(info: Info) -> Any:
    """Encodes an Info; defaults travel as JSON text."""
    out = method_pb2.InfoResponse(name=info.name, version=info.version, description=info.description)
    for p in info.params:
        out.params.add(name=p.name, type=p.type, description=p.description, may_omit=p.optional,
                       default_json="" if p.default is None else json.dumps(p.default))
    return out


def _floats(values: Mapping[str, float]) -> dict:
    out = {}
    for k, v in values.items():
        if not isinstance(k, str):
            raise TypeError(f"metric name {k!r} is not a string")
        out[k] = float(v)
    return out


class _Running(NamedTuple):
    trial_id: str
    attempt: int
    cancelled: CancelEvent
    checkpoints: _CheckpointState


_DONE = object()


class MethodServicer(method_pb2_grpc.MethodServiceServicer):
    """Serves a Method over MethodService, one trial at a time."""

    def __init__(self, method: Method) -> None:
        self._method = method
        self._lock = threading.Lock()
        self._running: Optional[_Running] = None

    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return info_to_proto(self._method.info())
        except Exception as e:  # noqa: BLE001 - every failure becomes a status
            _log_sdk.error("info failed", exc_info=True)
            st = status_for(e, CancelEvent())
            context.abort_with_status(st)
            raise  # not reached: abort_with_status raises

    def CancelTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            r = self._running
            if r is None or r.trial_id != request.trial_id or r.attempt != request.attempt:
                return method_pb2.CancelTrialResponse(found=False)
        r.cancelled.cancel(f"cancelled by host: {request.reason}")
        return method_pb2.CancelTrialResponse(found=True)

    def RequestCheckpoint(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            r = self._running
            if r is None or r.trial_id != request.trial_id or r.attempt != request.attempt:
                return method_pb2.RequestCheckpointResponse(found=False)
        r.checkpoints.wanted.set()
        return method_pb2.RequestCheckpointResponse(found=True)

    def cancel_all(self, reason: str) -> None:
        """Cancels the running trial, if any (on shutdown)."""
        with self._lock:
            r = self._running
        if r is not None:
            r.cancelled.cancel(reason)

    def RunTrial(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        cancelled = CancelEvent()
        try:
            req = request_from_proto(request)
        except ParamError as e:
            context.abort_with_status(status_for(e, cancelled))
            return
        with self._lock:
            if self._running is not None:
                r = self._running
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"busy with trial {r.trial_id} attempt {r.attempt}")
                return
            self._running = _Running(req.trial_id, req.attempt, cancelled, req._checkpoints)
        # The host abandoning the stream cancels too (the callback also runs
        # after a normal end, when it no longer matters).
        context.add_callback(lambda: cancelled.cancel("the host ended the stream"))
        timer = None
        if req.deadline is not None:
            timer = threading.Timer(max(0.0, req.deadline - time.time()), cancelled.cancel,
                                    args=("deadline exceeded", True))
            timer.daemon = True
            timer.start()
        events: "queue.Queue[Any]" = queue.Queue()

        def report(step: int, values: Mapping[str, float], checkpoint: Optional[str] = None) -> None:
            cancelled.check()
            m = method_pb2.Metrics(step=int(step))
            m.values.update(_floats(values))
            if checkpoint:
                _check_checkpoint_dir(req._checkpoints.root, checkpoint)
                m.checkpoint_dir = checkpoint
            events.put(method_pb2.RunTrialResponse(metrics=m))

        def work() -> None:
            try:
                res = self._method.run(req, report, cancelled)
                msg = method_pb2.RunTrialResponse(result=method_pb2.Result(metrics=_floats(res or {})))
                events.put(msg)
            except BaseException as e:  # noqa: BLE001 - sent to the host as a status
                if not isinstance(e, (ParamError, Cancelled)):
                    _log_sdk.error("trial failed", exc_info=True,
                                   extra={"trial_id": req.trial_id, "attempt": req.attempt})
                events.put(e)
            finally:
                events.put(_DONE)

        worker = threading.Thread(target=work, name=f"trial-{req.trial_id[:12]}", daemon=True)
        worker.start()
        try:
            while True:
                ev = events.get()
                if ev is _DONE:
                    return
                if isinstance(ev, BaseException):
                    context.abort_with_status(status_for(ev, cancelled))
                    return
                yield ev
        finally:
            # Reached on every end, including the host abandoning the stream
            # (GeneratorExit): the method must return before the next trial.
            if worker.is_alive():
                cancelled.cancel("the host ended the stream")
                worker.join()
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._running = None


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Answers SERVING for the whole server and for "plugin"."""

    def _status(self, service: str) -> Any:
        ok = service in ("", HEALTH_SERVICE)
        s = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        return health_pb2.HealthCheckResponse(status=s)

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._status(request.service)

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        yield self._status(request.service)
        while context.is_active():
            time.sleep(1)


class ControllerServicer(goplugin_pb2_grpc.GRPCControllerServicer):
    """go-plugin's GRPCController: Shutdown asks the plugin to exit."""

    def __init__(self, shutdown: threading.Event) -> None:
        self._shutdown = shutdown

    def Shutdown(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._shutdown.set()
        return goplugin_pb2.Empty()


class StdioServicer(goplugin_pb2_grpc.GRPCStdioServicer):
    """go-plugin's GRPCStdio. Output reaches the host on stderr instead (the
    SDK points stdout there after the handshake), so the stream only stays
    open until the host or the plugin goes away."""

    def __init__(self, shutdown: threading.Event) -> None:
        self._shutdown = shutdown

    def StreamStdio(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        while context.is_active() and not self._shutdown.wait(0.5):
            pass
        return
        yield  # a generator: a server stream with no messages


def _fail(msg: str) -> NoReturn:
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.stderr.flush()
    sys.exit(1)


def _listen(server: grpc.Server) -> tuple:
    """Binds server to a unix socket in the directory the host chose
    (PLUGIN_UNIX_SOCKET_DIR), or else to a local TCP port, and returns the
    handshake's (network, address) and a path to remove on exit."""
    sock_dir = os.environ.get("PLUGIN_UNIX_SOCKET_DIR")
    if sock_dir:
        path = os.path.join(sock_dir, "plugin" + secrets.token_hex(8))
        if server.add_insecure_port("unix:" + path) == 0:
            _fail(f"cannot listen on unix socket {path}")
        return "unix", path, path
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        _fail("cannot listen on a local TCP port")
    return "tcp", f"127.0.0.1:{port}", None


def serve(method: Method) -> None:
    """Serves method as an asymptote method plugin until the host asks it to
    stop, then exits the process. Call it from the plugin's main.

    Started by hand rather than by the agent, it prints a hint and exits
    with status 1. It prints the handshake line on stdout and then points
    stdout at stderr, so stray prints reach the agent's log instead of
    being dropped; log with asymptote_method.logger().
    """
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        _fail("This program is an asymptote method plugin; it is not meant to be run directly.\n"
              "Install it in the agent's plugin directory and allowlist its SHA-256 (see docs/plugins.md).")
    versions = [v.strip() for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",") if v.strip()]
    if versions and str(PROTOCOL_VERSION) not in versions:
        _fail(f"the host speaks method protocol versions {', '.join(versions)}; "
              f"this plugin speaks {PROTOCOL_VERSION}")
    _log.setup()
    start = getattr(method, "start", None)
    if callable(start):
        try:
            start()
        except Exception as e:  # noqa: BLE001 - reported on stderr, as the Go SDK does
            _fail(f"method start: {e}")

    shutdown = threading.Event()
    servicer = MethodServicer(method)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"))
    method_pb2_grpc.add_MethodServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    goplugin_pb2_grpc.add_GRPCControllerServicer_to_server(ControllerServicer(shutdown), server)
    goplugin_pb2_grpc.add_GRPCStdioServicer_to_server(StdioServicer(shutdown), server)
    network, addr, sock = _listen(server)
    server.start()

    # SIGINT and SIGTERM go to the agent, which decides when the method
    # stops: a SIGTERM sent to every process of a job (SLURM at a time
    # limit) lets the agent ask for a checkpoint first. (SIGTERM is caught,
    # not ignored, so programs the method starts get the default again.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _log_sdk.info("SIGTERM ignored: the agent stops this method"))

    sys.stdout.write(f"{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|{network}|{addr}|grpc\n")
    sys.stdout.flush()
    # After the handshake the host discards stdout: send it to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    _log_sdk.debug("plugin serving", extra={"network": network, "address": addr, "pid": os.getpid()})

    while not shutdown.wait(1.0):
        pass
    servicer.cancel_all("the plugin is shutting down")
    server.stop(grace=1.0).wait()
    if sock is not None:
        try:
            os.remove(sock)
        except OSError:
            pass
    logging.shutdown()
    sys.stderr.flush()
    # Skip interpreter teardown: a method's worker threads (or torch's)
    # must not delay the exit the host waits for.
    os._exit(0)
