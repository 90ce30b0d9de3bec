"""Unit tests for asymptote_method: parameters, cancellation, error
mapping, logging and MethodService over a real in-process gRPC server.

Run from plugins/python: python3 -m unittest discover -s tests -t .
(plugins/python/python_test.go runs them under go test).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc

from asymptote_method import CancelEvent, Cancelled, Info, Method, NoCheckpoints, ParamError, ParamInfo, Preempted, TrialRequest
from asymptote_method import log as alog
from asymptote_method._pb import method_pb2, method_pb2_grpc, rpc_status_pb2
from asymptote_method.server import MethodServicer, request_from_proto, status_for


class TrialRequestTest(unittest.TestCase):
    def test_helpers(self) -> None:
        r = TrialRequest(params={"w": 64, "lr": 0.5, "name": "x", "flag": True, "frac": 1.5})
        self.assertEqual(r.int("w", 1, 1, 128), 64)
        self.assertEqual(r.int("missing", 7), 7)
        self.assertEqual(r.float("lr", 0.1, 0, 1), 0.5)
        self.assertEqual(r.string("name", ""), "x")
        self.assertTrue(r.boolean("flag", False))
        cases = [
            (lambda: r.int("w", 1, 1, 32), "w", "[1, 32]"),
            (lambda: r.int("frac", 1), "frac", "integer"),
            (lambda: r.float("name", 1.0), "name", "number"),
            (lambda: r.float("flag", 1.0), "flag", "number"),
            (lambda: r.string("w", ""), "w", "string"),
            (lambda: r.boolean("w", False), "w", "true or false"),
            (lambda: r.check_known([ParamInfo("w", "int")]), "flag", "this method takes w"),
        ]
        for call, param, text in cases:
            with self.subTest(param=param, text=text):
                with self.assertRaises(ParamError) as cm:
                    call()
                self.assertEqual(cm.exception.param, param)
                self.assertIn(text, cm.exception.reason)
                self.assertTrue(str(cm.exception).startswith(f'parameter "{param}": '))


class CancelEventTest(unittest.TestCase):
    def test_first_reason_wins(self) -> None:
        ev = CancelEvent()
        ev.check()
        ev.cancel("deadline exceeded", deadline=True)
        ev.cancel("by host")
        self.assertTrue(ev.is_set())
        with self.assertRaises(Cancelled) as cm:
            ev.check()
        self.assertTrue(cm.exception.deadline)
        self.assertEqual(cm.exception.reason, "deadline exceeded")


class StatusTest(unittest.TestCase):
    def test_mapping(self) -> None:
        idle, cancelled = CancelEvent(), CancelEvent()
        cancelled.cancel("by host")
        st = status_for(ParamError("width", "too wide"), idle)
        self.assertEqual(st.code, grpc.StatusCode.INVALID_ARGUMENT)
        key, raw = st.trailing_metadata[0]
        self.assertEqual(key, "grpc-status-details-bin")
        detail = rpc_status_pb2.Status.FromString(raw)
        self.assertEqual(detail.code, 3)
        self.assertEqual(detail.details[0].type_url, "type.googleapis.com/google.rpc.BadRequest")
        br = rpc_status_pb2.BadRequest.FromString(detail.details[0].value)
        self.assertEqual((br.field_violations[0].field, br.field_violations[0].description), ("width", "too wide"))

        self.assertEqual(status_for(Cancelled("x", deadline=True), idle).code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(status_for(Cancelled("x"), idle).code, grpc.StatusCode.CANCELLED)
        # Any failure after cancellation is the cancellation's doing.
        self.assertEqual(status_for(RuntimeError("y"), cancelled).code, grpc.StatusCode.CANCELLED)
        st = status_for(RuntimeError("boom"), idle)
        self.assertEqual((st.code, st.details), (grpc.StatusCode.UNKNOWN, "RuntimeError: boom"))
        # Preempted is ABORTED with the PREEMPTED detail the Go host reads
        # as sdk.ErrPreempted.
        st = status_for(Preempted("node draining"), idle)
        self.assertEqual((st.code, st.details), (grpc.StatusCode.ABORTED, "preempted: node draining"))
        detail = rpc_status_pb2.Status.FromString(st.trailing_metadata[0][1])
        self.assertEqual(detail.details[0].type_url, "type.googleapis.com/google.rpc.ErrorInfo")
        info = rpc_status_pb2.ErrorInfo.FromString(detail.details[0].value)
        self.assertEqual((info.reason, info.domain), ("PREEMPTED", "asymptote.dev"))

    def test_request_from_proto(self) -> None:
        msg = method_pb2.RunTrialRequest(trial_id="t", attempt=2, params_json='{"a": 1, "b": "x"}', seed=-3,
                                         threads=0, gpus=[1])
        msg.deadline.seconds = 100
        r = request_from_proto(msg)
        self.assertEqual((r.trial_id, r.attempt, r.params, r.seed, r.threads, r.gpus, r.deadline),
                         ("t", 2, {"a": 1, "b": "x"}, -3, 1, [1], 100.0))
        self.assertEqual(r.config, {})
        with self.assertRaises(ParamError):
            request_from_proto(method_pb2.RunTrialRequest(params_json="[1]"))
        r = request_from_proto(method_pb2.RunTrialRequest(config_json='{"command": {"program": "x"}}'))
        self.assertEqual(r.config, {"command": {"program": "x"}})
        with self.assertRaises(ParamError):
            request_from_proto(method_pb2.RunTrialRequest(config_json="[]"))


class LogTest(unittest.TestCase):
    def test_json_lines(self) -> None:
        buf = io.StringIO()
        alog.setup(buf)
        try:
            alog.logger("m").info("hello", extra={"trial_id": "t1"})
            alog.logger("m").debug("hidden")
        finally:
            alog.setup()
        lines = buf.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        entry = json.loads(lines[0])
        self.assertEqual((entry["@level"], entry["@message"], entry["trial_id"]), ("info", "hello", "t1"))
        self.assertRegex(entry["@timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Counter(Method):
    """Counts to steps, sleeping between reports; rejects steps < 0."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def info(self) -> Info:
        return Info("counter", "1", "counts", [ParamInfo("steps", "int", 3), ParamInfo("tag", "string")])

    def run(self, request, report, cancelled):
        steps = request.int("steps", 3, 0, 10**6)
        self.started.set()
        for i in range(steps):
            report(i + 1, {"i": i})
            cancelled.wait(0.01)
        return {"steps": steps}


class ServerTest(unittest.TestCase):
    def setUp(self) -> None:
        alog.setup(io.StringIO())  # keep expected failures out of the test output
        self.method = Counter()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        method_pb2_grpc.add_MethodServiceServicer_to_server(MethodServicer(self.method), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = method_pb2_grpc.MethodServiceStub(self.channel)

    def tearDown(self) -> None:
        self.channel.close()
        self.server.stop(0).wait()
        alog.setup()

    def run_trial(self, params: dict, trial_id: str = "t"):
        return self.stub.RunTrial(method_pb2.RunTrialRequest(trial_id=trial_id, attempt=1,
                                                             params_json=json.dumps(params)))

    def test_info(self) -> None:
        info = self.stub.Info(method_pb2.InfoRequest())
        self.assertEqual(info.name, "counter")
        self.assertEqual([(p.name, p.default_json) for p in info.params], [("steps", "3"), ("tag", "")])

    def test_run(self) -> None:
        events = list(self.run_trial({"steps": 3}))
        self.assertEqual([e.metrics.step for e in events[:3]], [1, 2, 3])
        self.assertEqual(events[2].metrics.values["i"], 2.0)
        self.assertEqual(dict(events[3].result.metrics), {"steps": 3.0})
        self.assertEqual(len(events), 4)

    def test_param_error(self) -> None:
        with self.assertRaises(grpc.RpcError) as cm:
            list(self.run_trial({"steps": -1}))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn('parameter "steps"', cm.exception.details())
        trailers = dict(cm.exception.trailing_metadata())
        st = rpc_status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        self.assertEqual(rpc_status_pb2.BadRequest.FromString(st.details[0].value).field_violations[0].field, "steps")

    def test_busy_and_cancel(self) -> None:
        stream = self.run_trial({"steps": 10**6}, "long")
        next(stream)
        with self.assertRaises(grpc.RpcError) as cm:
            list(self.run_trial({"steps": 1}, "other"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        miss = self.stub.CancelTrial(method_pb2.CancelTrialRequest(trial_id="other", attempt=1))
        self.assertFalse(miss.found)
        start = time.monotonic()
        hit = self.stub.CancelTrial(method_pb2.CancelTrialRequest(trial_id="long", attempt=1, reason="test"))
        self.assertTrue(hit.found)
        with self.assertRaises(grpc.RpcError) as cm:
            list(stream)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.CANCELLED)
        self.assertIn("test", cm.exception.details())
        self.assertLess(time.monotonic() - start, 1.0)
        # Idle again: the next trial runs.
        self.assertEqual(len(list(self.run_trial({"steps": 1}, "next"))), 2)

    def test_deadline(self) -> None:
        req = method_pb2.RunTrialRequest(trial_id="d", attempt=1, params_json='{"steps": 1000000}')
        req.deadline.FromNanoseconds(time.time_ns() + 200_000_000)
        with self.assertRaises(grpc.RpcError) as cm:
            list(self.stub.RunTrial(req))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_abandoned_stream_cancels(self) -> None:
        stream = self.run_trial({"steps": 10**6}, "gone")
        next(stream)
        stream.cancel()
        # The method stops and the server takes the next trial.
        deadline = time.monotonic() + 2
        while True:
            try:
                self.assertEqual(len(list(self.run_trial({"steps": 1}, "next"))), 2)
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()


class Resumable(Method):
    """Counts to steps from where its checkpoint left off, saving one when
    the host asks."""

    def info(self) -> Info:
        return Info("resumable", "1", "counts and checkpoints", [ParamInfo("steps", "int", 3)])

    def run(self, request, report, cancelled):
        steps = request.int("steps", 3, 0, 10**6)
        total = 0
        first = 1
        if request.resume is not None:
            with open(os.path.join(request.resume.dir, "total")) as f:
                total = int(f.read())
            first = request.resume.step + 1
        for i in range(first, steps + 1):
            cancelled.check()
            total += i
            path = None
            if request.checkpoint_wanted():
                path = request.new_checkpoint(i)
                with open(os.path.join(path, "total"), "w") as f:
                    f.write(str(total))
            report(i, {"total": total}, checkpoint=path)
            cancelled.wait(0.005)
        return {"total": total}


class CheckpointTest(unittest.TestCase):
    def setUp(self) -> None:
        alog.setup(io.StringIO())
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        method_pb2_grpc.add_MethodServiceServicer_to_server(MethodServicer(Resumable()), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = method_pb2_grpc.MethodServiceStub(self.channel)
        self.root = tempfile.mkdtemp()

    def tearDown(self) -> None:
        self.channel.close()
        self.server.stop(0).wait()
        shutil.rmtree(self.root)
        alog.setup()

    def test_no_checkpoints_without_a_root(self) -> None:
        req = TrialRequest()
        self.assertFalse(req.keeps_checkpoints())
        with self.assertRaises(NoCheckpoints):
            req.new_checkpoint(1)

    def test_checkpoint_when_asked_then_resume(self) -> None:
        steps = 200
        stream = self.stub.RunTrial(method_pb2.RunTrialRequest(
            trial_id="c", attempt=1, params_json=json.dumps({"steps": steps}), checkpoint_root=self.root))
        saved = []
        asked = False
        final = None
        for ev in stream:
            if ev.HasField("result"):
                final = ev.result.metrics["total"]
                continue
            if ev.metrics.step == 20 and not asked:
                asked = True
                self.assertTrue(self.stub.RequestCheckpoint(method_pb2.RequestCheckpointRequest(trial_id="c", attempt=1)).found)
            if ev.metrics.checkpoint_dir:
                saved.append((ev.metrics.step, ev.metrics.checkpoint_dir))
        self.assertEqual(final, steps * (steps + 1) / 2)
        self.assertEqual(len(saved), 1, saved)
        step, path = saved[0]
        self.assertGreater(step, 20)
        self.assertTrue(path.startswith(self.root))
        # A new attempt resumes from the checkpoint and ends where the
        # uninterrupted one did.
        req = method_pb2.RunTrialRequest(trial_id="c", attempt=2, params_json=json.dumps({"steps": steps}))
        req.resume.step = step
        req.resume.dir = path
        events = list(self.stub.RunTrial(req))
        self.assertEqual(events[0].metrics.step, step + 1)
        self.assertEqual(events[-1].result.metrics["total"], final)

    def test_checkpoint_outside_the_root_fails_the_attempt(self) -> None:
        class Rogue(Resumable):
            def run(self, request, report, cancelled):
                report(1, {"x": 1}, checkpoint="/etc")
                return {"x": 1}

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        method_pb2_grpc.add_MethodServiceServicer_to_server(MethodServicer(Rogue()), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = method_pb2_grpc.MethodServiceStub(ch)
                with self.assertRaises(grpc.RpcError) as cm:
                    list(stub.RunTrial(method_pb2.RunTrialRequest(trial_id="r", attempt=1, checkpoint_root=self.root)))
                self.assertIn("not inside", cm.exception.details())
        finally:
            server.stop(0).wait()
