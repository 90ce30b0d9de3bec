"""Unit tests for torch_charlm's pieces: the corpus split's RNG, the
parameters, the schedule, the data order and the evaluation plan.
(The Go tests train it through the method manager on real data.)"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import unittest

import torch

from asymptote_method import CancelEvent, Checkpoint, ParamError, TrialRequest
from asymptote_method.api import _CheckpointState
from torch_charlm import corpus
from torch_charlm.method import Trainer, Windows, cosine_lr, eval_windows, parse


def fake_text(n: int = 200_000) -> corpus.Text:
    raw = bytes((i * 7919 + i // 13) % 50 + 32 for i in range(n))
    return corpus.split(raw)


class CorpusTest(unittest.TestCase):
    def test_pcg_matches_go(self) -> None:
        # From Go: rand.NewPCG(0x6b6a76, 1).Uint64() ×3, NewPCG(1<<63+5, 12345).Uint64().
        p = corpus.PCG(0x6B6A76, 1)
        self.assertEqual([p.uint64() for _ in range(3)],
                         [5546392622287455552, 3530741525687198609, 1364313826879418898])
        self.assertEqual(corpus.PCG((1 << 63) + 5, 12345).uint64(), 16986320546079968640)

    def test_split_layout(self) -> None:
        raw = bytes(range(32, 96)) * 400  # 25,600 bytes: 25 blocks
        t = corpus.split(raw)
        self.assertEqual(t.vocab, bytes(range(32, 96)))
        self.assertEqual((len(t.train), len(t.val)), (23 * 1024, 2 * 1024))
        self.assertEqual(sorted(t.decode(t.train) + t.decode(t.val)), sorted(raw))

    def test_missing(self) -> None:
        with self.assertRaises(corpus.MissingData) as cm:
            corpus.find(["/nonexistent"], corpus.KJV_FILE)
        self.assertIn("install-data.sh", str(cm.exception))


class ParseTest(unittest.TestCase):
    def test_defaults_and_epochs(self) -> None:
        t = fake_text()
        c = parse(TrialRequest(params={"unique_tokens": 10000, "epochs": 2.5}), t)
        self.assertEqual((c.width, c.depth, c.heads, c.context, c.tokens), (64, 2, 4, 64, 25000))
        self.assertEqual(parse(TrialRequest(params={}), fake_text(2_000_000)).tokens, 200000)

    def test_errors(self) -> None:
        t = fake_text()
        for params, name in [({"width": 30, "heads": 4}, "width"), ({"context": 1}, "context"),
                             ({"tokens": 10, "epochs": 1}, "epochs"), ({"epochs": 1e-6}, "epochs"),
                             ({"unique_tokens": 10**9}, "unique_tokens"), ({"bogus": 1}, "bogus")]:
            with self.subTest(params=params):
                with self.assertRaises(ParamError) as cm:
                    parse(TrialRequest(params=params), t)
                self.assertEqual(cm.exception.param, name)


class ScheduleTest(unittest.TestCase):
    def test_cosine(self) -> None:
        self.assertAlmostEqual(cosine_lr(1.0, 0, 100, 10), 0.1)
        self.assertAlmostEqual(cosine_lr(1.0, 10, 100, 10), 1.0)
        self.assertAlmostEqual(cosine_lr(1.0, 99, 100, 10), 0.1)
        self.assertEqual(cosine_lr(1.0, 5, 5, 0), 1.0 * (0.1 + 0.45 * (1 + math.cos(math.pi * 5 / 4))))


class WindowsTest(unittest.TestCase):
    def test_epoch_covers_prefix(self) -> None:
        g = torch.Generator()
        g.manual_seed(1)
        w = Windows(1000, 10, g)
        starts = w.next(99).tolist()
        self.assertEqual(len(set(starts)), len(starts))
        shift = min(starts)
        self.assertEqual(sorted(starts), list(range(shift, 1000 - 10, 10))[:len(starts)])
        self.assertTrue(all(s + 10 < 1000 for s in starts))
        self.assertEqual(len(w.next(250)), 250)  # runs on into later epochs

    def test_eval_plan(self) -> None:
        for n, context in [(1000, 64), (1001, 7), (1000, 2), (1500, 33)]:
            with self.subTest(n=n, context=context):
                starts, skip = eval_windows(n, context)
                targets = []
                for q in starts.tolist():
                    self.assertGreaterEqual(q, 0)
                    # Window q predicts q+1+j from q … q+j: j+1 characters.
                    self.assertGreaterEqual(skip + 1, context // 2)
                    targets.extend(q + 1 + j for j in range(skip, context))
                self.assertEqual(targets[:n], list(range(corpus.MAX_CONTEXT, corpus.MAX_CONTEXT + n)))


class CancelTest(unittest.TestCase):
    def test_check(self) -> None:
        ev = CancelEvent()
        ev.cancel("stop")
        with self.assertRaises(Exception):
            ev.check()


class CheckpointTest(unittest.TestCase):
    """Trains on a made-up text (the Go tests train on the real one) and
    resumes from checkpoints in fresh trainers, as a new attempt on
    another host would."""

    # 24 steps of 4 sequences of 16 characters, two members with dropout,
    # reported every 5 steps and checkpointed every 7 (on and between
    # reports). An epoch of 1000 unique characters is 62 windows, so the
    # run starts a second epoch (a new shuffle) after the checkpoints at
    # steps 7 and 14.
    PARAMS = {"width": 16, "depth": 1, "heads": 2, "context": 16, "batch": 4, "tokens": 4 * 16 * 24,
              "eval_tokens": 1000, "report_every": 5, "unique_tokens": 1000, "members": 2, "dropout": 0.2,
              "checkpoint_every": 7}
    # Relative difference allowed between resumed and uninterrupted
    # losses. On the CPU, with deterministic algorithms and one thread,
    # they agree bit for bit; the tolerance leaves room for other builds.
    TOLERANCE = 1e-6

    def setUp(self) -> None:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        self.text = fake_text()
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)

    def request(self, params: dict, resume=None) -> TrialRequest:
        root = tempfile.mkdtemp(dir=self.root)
        return TrialRequest(params=params, seed=3, resume=resume, _checkpoints=_CheckpointState(root))

    def run_trial(self, params: dict, resume=None, ask_at=None):
        """Trains a trial in a fresh trainer; returns its last report and
        its reports as (step, values, checkpoint) triples."""
        req = self.request(params, resume)
        reports = []

        def report(step, values, checkpoint=None):
            reports.append((step, values, checkpoint))
            if ask_at is not None and step == ask_at:
                req._checkpoints.wanted.set()

        tr = Trainer(parse(req, self.text), self.text, req.seed, torch.device("cpu"))
        return tr.train(report, CancelEvent(), req), reports

    def assertClose(self, got: dict, want: dict, what: str) -> None:
        keys = {k for k in want if k != "tokens_per_second"}
        self.assertEqual({k for k in got if k != "tokens_per_second"}, keys, what)
        for k in keys:
            self.assertLessEqual(abs(got[k] - want[k]), self.TOLERANCE * max(abs(want[k]), 1e-12),
                                 f"{what}: {k} = {got[k]!r} after resume, want {want[k]!r}")

    def test_resume_matches_uninterrupted(self) -> None:
        last, reports = self.run_trial(self.PARAMS)
        saved = [(s, v, c) for s, v, c in reports if c]
        self.assertEqual([s for s, _, _ in saved], [7, 14, 21])
        self.assertTrue(os.path.isfile(os.path.join(saved[1][2], "state.pt")))
        for step, values, path in saved:
            with self.subTest(step=step):
                got, after = self.run_trial(self.PARAMS, Checkpoint(step, values, path))
                want = [(s, v) for s, v, _ in reports if s > step]
                self.assertEqual([s for s, _, _ in after], [s for s, _ in want])
                for (s, v, _), (_, w) in zip(after, want):
                    self.assertClose(v, w, f"step {s}")
                self.assertClose(got, last, "last report")

    def test_checkpoints_change_no_report(self) -> None:
        _, with_ckpt = self.run_trial(self.PARAMS)
        plain = dict(self.PARAMS)
        del plain["checkpoint_every"]
        _, without = self.run_trial(plain)
        regular = [(s, v) for s, v, _ in with_ckpt if "train_loss" in v]
        self.assertEqual([s for s, _ in regular], [s for s, _, _ in without])
        for (s, v), (_, w, _) in zip(regular, without):
            for k in ("train_loss", "val_loss", "tokens"):
                self.assertEqual(v[k], w[k], f"step {s}: {k}")
        between = [s for s, v, c in with_ckpt if c and "train_loss" not in v]
        self.assertEqual(between, [7, 14, 21])

    def test_checkpoint_when_asked(self) -> None:
        params = dict(self.PARAMS)
        del params["checkpoint_every"]
        last, reports = self.run_trial(params, ask_at=10)
        saved = [(s, v, c) for s, v, c in reports if c]
        self.assertEqual([s for s, _, _ in saved], [11])
        got, _ = self.run_trial(params, Checkpoint(*saved[0]))
        self.assertClose(got, last, "resumed from the asked checkpoint")

    def test_resume_refuses_other_parameters(self) -> None:
        _, reports = self.run_trial(self.PARAMS)
        step, values, path = next(r for r in reports if r[2])
        for change in ({"width": 32}, {"members": 1}, {"tokens": 4 * 16 * 30}):
            with self.subTest(change=change):
                with self.assertRaisesRegex(ValueError, "other parameters"):
                    self.run_trial({**self.PARAMS, **change}, Checkpoint(step, values, path))

    def test_constant_schedule_continues_a_shorter_run(self) -> None:
        # Under the constant schedule a run of 24 steps continues the last
        # checkpoint of a run of 14 (saved after its last step because 14
        # falls on checkpoint_every) and ends as if it had run from 0: the
        # promotion successive halving with continue makes.
        long = {**self.PARAMS, "schedule": "constant"}
        short = {**long, "tokens": 4 * 16 * 14}
        last, reports = self.run_trial(long)
        short_last, short_reports = self.run_trial(short)
        saved = [(s, v, c) for s, v, c in short_reports if c]
        self.assertEqual([s for s, _, _ in saved], [7, 14])
        got, after = self.run_trial(long, Checkpoint(*saved[-1]))
        want = [(s, v) for s, v, _ in reports if s > 14]
        self.assertEqual([s for s, _, _ in after], [s for s, _ in want])
        for (s, v, _), (_, w) in zip(after, want):
            # The first report after the continuation averages train_loss
            # over fewer steps (the short run reported at its end).
            self.assertEqual(v.keys(), w.keys(), f"step {s}")
            for k in ("val_loss", "tokens", "train_loss"):
                if k not in w or (k == "train_loss" and s == 15):
                    continue
                self.assertLessEqual(abs(v[k] - w[k]), self.TOLERANCE * abs(w[k]), f"step {s}: {k}")
        self.assertLessEqual(abs(got["val_loss"] - last["val_loss"]), self.TOLERANCE * last["val_loss"])
        # The short run's own step-14 report is the long run's val_loss
        # there: its steps did not depend on how many there were in all.
        at14 = next(v for s, v, _ in reports if s == 14)
        self.assertEqual(short_last["val_loss"], at14["val_loss"])
        # Resuming the short run after its last step gives its result.
        again, more = self.run_trial(short, Checkpoint(*saved[-1]))
        self.assertEqual(more, [])
        self.assertEqual(again["val_loss"], short_last["val_loss"])
        self.assertEqual(again["train_loss"], short_last["train_loss"])

    def test_continuing_refuses_what_does_not_continue(self) -> None:
        constant = {**self.PARAMS, "schedule": "constant", "tokens": 4 * 16 * 14}
        _, reports = self.run_trial(constant)
        end = [r for r in reports if r[2]][-1]
        _, cosine_reports = self.run_trial({**self.PARAMS, "tokens": 4 * 16 * 14})
        cosine_mid = next(r for r in cosine_reports if r[2])
        cases = [
            ("a cosine run into a longer one", {**self.PARAMS}, cosine_mid, "schedule: constant"),
            ("into another schedule", {**self.PARAMS, "tokens": 4 * 16 * 24}, end, "schedule constant"),
            ("into a shorter run", {**constant, "tokens": 4 * 16 * 10}, end, "only a longer run"),
        ]
        for what, params, (step, values, path), want in cases:
            with self.subTest(what):
                with self.assertRaisesRegex(ValueError, want):
                    self.run_trial(params, Checkpoint(step, values, path))

    def test_schedule_is_checked(self) -> None:
        with self.assertRaisesRegex(ParamError, "cosine or constant"):
            parse(self.request({**self.PARAMS, "schedule": "linear"}), self.text)


if __name__ == "__main__":
    unittest.main()
