"""Unit tests for torch_charlm's pieces: the corpus split's RNG, the
parameters, the schedule, the data order and the evaluation plan.
(The Go tests train it through the method manager on real data.)"""

from __future__ import annotations

import math
import unittest

import torch

from asymptote_method import CancelEvent, ParamError, TrialRequest
from torch_charlm import corpus
from torch_charlm.method import Windows, cosine_lr, eval_windows, parse


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


if __name__ == "__main__":
    unittest.main()
