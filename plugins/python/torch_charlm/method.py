"""torch_charlm: a causal transformer character LM on the King James Bible,
trained with PyTorch; the reference for methods written in Python.

It exposes the axes charlm does, under the same names where they mean the
same thing (width, depth, context, lr, weight_decay, dropout,
unique_tokens, tokens or epochs, members, eval_tokens, report_every,
checkpoint_every), so a study can swap one method for the other. Losses are in nats per character;
val_loss scores the same validation characters as charlm and ngram (the
first eval_tokens characters of the validation split from position 64 on).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from asymptote_method import (
    METRIC_EPOCHS,
    METRIC_FLOPS,
    METRIC_MEMBERS,
    METRIC_PARAMS,
    METRIC_TOKENS,
    METRIC_TRAIN_LOSS,
    METRIC_UNIQUE_TOKENS,
    METRIC_VAL_LOSS,
    CancelEvent,
    Info,
    Method,
    NoCheckpoints,
    ParamError,
    ParamInfo,
    Report,
    TrialRequest,
    logger,
)

from . import corpus

# VERSION is part of every trial's identity: bump it when results for the
# same parameters and seed change.
VERSION = "1"

PARAMS: Sequence[ParamInfo] = (
    ParamInfo("width", "int", 64, "d_model: the transformer's width, 8–1024, a multiple of heads"),
    ParamInfo("depth", "int", 2, "transformer layers, 1–12"),
    ParamInfo("heads", "int", 4, "attention heads per layer, 1–16"),
    ParamInfo("context", "int", 64, "characters of history, 2–64"),
    ParamInfo("lr", "float", 3e-3, "peak AdamW learning rate (warm-up, then the schedule), (0, 1]"),
    ParamInfo("schedule", "string", "cosine",
              "learning-rate schedule: cosine (warm-up over the first 5% of steps, at most 100, then decay to "
              "lr/10 at the last step) or constant (100 warm-up steps, then lr to the end; a run of more tokens "
              "may continue this one's checkpoints, as successive halving with continue does)"),
    ParamInfo("weight_decay", "float", 0.0,
              "AdamW weight decay on weight matrices and embeddings (decoupled, scaled by the learning rate), 0–100"),
    ParamInfo("dropout", "float", 0.0, "dropout on embeddings, attention and residual branches, 0–0.9"),
    ParamInfo("unique_tokens", "int", 1000000,
              "distinct training characters: a prefix of the training split, 1000 to its length (3,869,183)"),
    ParamInfo("tokens", "int", None,
              "characters predicted in training per member (default unique_tokens × epochs, else 200,000); "
              "rounded up to whole sequences of context characters", optional=True),
    ParamInfo("epochs", "float", None, "passes over unique_tokens; give tokens or epochs, not both", optional=True),
    ParamInfo("batch", "int", 16, "sequences of context characters per optimizer step, 1–1024"),
    ParamInfo("members", "int", 1,
              "independently seeded ensemble members trained in the trial, 1–64; evaluation averages their "
              "predicted distributions"),
    ParamInfo("eval_tokens", "int", 16384, "validation characters scored, 1000 to the validation split's size"),
    ParamInfo("report_every", "int", 0, "optimizer steps between reports of train_loss and val_loss "
                                        "(0: about 8 reports)"),
    ParamInfo("checkpoint_every", "int", 0, "optimizer steps between checkpoints (0: only when the host asks "
                                            "for one); results do not depend on it"),
)


@dataclass(frozen=True)
class Config:
    """A trial's checked parameters."""

    width: int
    depth: int
    heads: int
    context: int
    lr: float
    weight_decay: float
    dropout: float
    unique: int
    tokens: int
    batch: int
    members: int
    eval_tokens: int
    every: int
    # Not part of the model: trials that set it differ from those that do
    # not only by their extra reports.
    checkpoint_every: int = 0
    # The constant schedule (else cosine): a run's steps up to any point do
    # not depend on how many there are in all, so a longer run continues a
    # shorter one's checkpoints.
    constant: bool = False


def parse(req: TrialRequest, text: corpus.Text) -> Config:
    """Checks the request's parameters; raises ParamError naming the first
    bad one."""
    req.check_known(PARAMS)
    heads = req.int("heads", 4, 1, 16)
    width = req.int("width", 64, 8, 1024)
    if width % heads:
        raise ParamError("width", f"{width} is not a multiple of heads ({heads})")
    c = dict(
        width=width,
        depth=req.int("depth", 2, 1, 12),
        heads=heads,
        context=req.int("context", 64, 2, corpus.MAX_CONTEXT),
        lr=req.float("lr", 3e-3, 1e-12, 1),
        weight_decay=req.float("weight_decay", 0.0, 0, 100),
        dropout=req.float("dropout", 0.0, 0, 0.9),
        unique=req.int("unique_tokens", 1000000, 1000, len(text.train)),
        batch=req.int("batch", 16, 1, 1024),
        members=req.int("members", 1, 1, 64),
        eval_tokens=req.int("eval_tokens", 16384, 1000, text.eval_size()),
        every=req.int("report_every", 0, 0, 10**9),
        checkpoint_every=req.int("checkpoint_every", 0, 0, 10**9),
    )
    schedule = req.string("schedule", "cosine")
    if schedule not in ("cosine", "constant"):
        raise ParamError("schedule", f"{schedule!r} is not a schedule; use cosine or constant")
    c["constant"] = schedule == "constant"
    if req.has("tokens") and req.has("epochs"):
        raise ParamError("epochs", "give tokens or epochs, not both")
    if req.has("epochs"):
        e = req.float("epochs", 1.0, 1e-6, 1e4)
        tokens = round(e * c["unique"])
        if tokens < c["context"]:
            raise ParamError("epochs", f"{e:g} epochs of {c['unique']} unique tokens is under one sequence "
                                       f"of {c['context']} characters")
    else:
        tokens = req.int("tokens", 200000, c["context"], 10**10)
    return Config(tokens=tokens, **c)


def cosine_lr(base: float, step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay from base to base/10 (the schedule
    of charlm's nn.CosineLR)."""
    if step < warmup:
        return base * (step + 1) / warmup
    if total <= warmup + 1:
        return base
    p = (step - warmup) / (total - warmup - 1)
    return base * (0.1 + 0.45 * (1 + math.cos(math.pi * p)))


# CONSTANT_WARMUP is the constant schedule's warm-up: fixed, so that it does
# not depend on the run's length (charlm's constantWarmup).
CONSTANT_WARMUP = 100


def constant_lr(base: float, step: int) -> float:
    """Linear warm-up over CONSTANT_WARMUP steps, then base (charlm's
    nn.ConstantLR): a longer run's first steps are a shorter one's."""
    if step < CONSTANT_WARMUP:
        return base * (step + 1) / CONSTANT_WARMUP
    return base


def pick_device(req: TrialRequest):
    """CUDA when the agent assigned GPUs (or CUDA_VISIBLE_DEVICES names
    some) and this torch can use them; the CPU otherwise."""
    import torch

    assigned = bool(req.gpus) or os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("", "-1")
    if assigned and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


class TorchCharLM(Method):
    """The torch_charlm method. data_dirs overrides where kjv.txt is looked
    for (None: corpus.default_dirs())."""

    def __init__(self, data_dirs: Optional[Sequence[str]] = None) -> None:
        self.data_dirs = data_dirs
        self.log = logger("torch_charlm")
        self._started = False

    def start(self) -> None:
        """Imports torch (serve calls this once, before the handshake).

        Importing torch takes a second or two, more on a loaded machine,
        well within the 30 s the agent allows for a start. Doing it later,
        on a thread, would not help: the import holds the GIL for most of
        that time and stalls the gRPC threads, CancelTrial included.
        """
        if self._started:
            return
        try:
            import torch  # noqa: F401

            from . import model  # noqa: F401
        except ImportError as e:
            raise RuntimeError(f"import torch: {e} (install Debian's python3-torch)") from e
        self._started = True

    def info(self) -> Info:
        return Info(name="torch_charlm", version=VERSION,
                    description="causal transformer character LM on the King James Bible, in PyTorch "
                                "(val_loss in nats/char)",
                    params=PARAMS)

    def run(self, request: TrialRequest, report: Report, cancelled: CancelEvent) -> Mapping[str, float]:
        text = corpus.load_kjv(self.data_dirs)
        cfg = parse(request, text)
        self.start()
        import torch

        torch.set_num_threads(request.threads)
        device = pick_device(request)
        # Process-wide; set on every trial so a pooled process never keeps
        # another trial's choice. (On CUDA it would need a cuBLAS workspace
        # setting and some kernels have no deterministic version.)
        torch.use_deterministic_algorithms(device.type == "cpu")
        tr = Trainer(cfg, text, request.seed, device)
        self.log.info("training", extra={"trial_id": request.trial_id, "attempt": request.attempt,
                                         "device": str(device), "threads": request.threads,
                                         "params": tr.num_params(), "steps": tr.steps})
        last = tr.train(report, cancelled, request)
        return {
            METRIC_VAL_LOSS: last[METRIC_VAL_LOSS],
            METRIC_TRAIN_LOSS: last[METRIC_TRAIN_LOSS],
            METRIC_PARAMS: float(tr.num_params()),
            METRIC_TOKENS: float(cfg.tokens),
            METRIC_UNIQUE_TOKENS: float(cfg.unique),
            METRIC_EPOCHS: cfg.tokens / cfg.unique,
            METRIC_FLOPS: tr.flops(),
            METRIC_MEMBERS: float(cfg.members),
            "cuda": 1.0 if device.type == "cuda" else 0.0,
            "tokens_per_second": last["tokens_per_second"],
        }


def eval_windows(n: int, context: int):
    """Plans evaluation: returns the start offsets in the validation split
    of windows of context+1 characters, and how many leading targets of
    each window to skip. The remaining targets, window after window, are
    validation characters MAX_CONTEXT, MAX_CONTEXT+1, … (the first n are
    scored), each predicted from at least half a context of history."""
    import torch

    s = max(1, context // 2)
    first = torch.arange(corpus.MAX_CONTEXT, corpus.MAX_CONTEXT + n, s)
    # Window q predicts q+1 … q+context; its last s targets are first … first+s-1.
    return first + s - context - 1, context - s


class Windows:
    """One member's training data order: each epoch cuts the unique prefix
    into windows of context+1 characters at a random shift and visits them
    in a random order, so every epoch predicts (almost) every character
    once."""

    def __init__(self, n: int, context: int, gen) -> None:
        self.n, self.context, self.gen = n, context, gen
        self.order = None
        self.i = 0

    def next(self, count: int):
        """Returns the start offsets of the next count windows."""
        import torch

        out = []
        while count > 0:
            if self.order is None or self.i == len(self.order):
                shift = int(torch.randint(self.context, (1,), generator=self.gen))
                starts = torch.arange(shift, self.n - self.context, self.context)
                self.order = starts[torch.randperm(len(starts), generator=self.gen)]
                self.i = 0
            take = min(count, len(self.order) - self.i)
            out.append(self.order[self.i:self.i + take])
            self.i += take
            count -= take
        return torch.cat(out)


class Trainer:
    """Trains cfg.members models in lockstep and evaluates their mixture."""

    def __init__(self, cfg: Config, text: corpus.Text, seed: int, device) -> None:
        import torch

        from .model import CharTransformer, decay_groups

        self.cfg, self.device = cfg, device
        self.steps = max(1, math.ceil(cfg.tokens / (cfg.batch * cfg.context)))
        vocab = len(text.vocab)
        self.train_data = torch.frombuffer(bytearray(text.train[:cfg.unique]), dtype=torch.uint8).to(device)
        n = cfg.eval_tokens
        self.val_data = torch.frombuffer(bytearray(text.val[:corpus.MAX_CONTEXT + n]), dtype=torch.uint8).to(device)
        self.offsets = torch.arange(cfg.context + 1, device=device)
        torch.manual_seed(seed)  # initialisation and dropout
        self.models, self.opts, self.windows = [], [], []
        for k in range(cfg.members):
            m = CharTransformer(vocab, cfg.width, cfg.depth, cfg.heads, cfg.context, cfg.dropout).to(device)
            self.models.append(m)
            self.opts.append(torch.optim.AdamW(decay_groups(m, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95)))
            g = torch.Generator()
            g.manual_seed((seed * 1000003 + k + 1) & ((1 << 63) - 1))
            self.windows.append(Windows(cfg.unique, cfg.context, g))

    def num_params(self) -> int:
        return self.models[0].num_params()

    def flops(self) -> float:
        """Training FLOPs: 6 per matmul weight per character (2 forward, 4
        backward) plus attention's 6·depth·context·width, times tokens and
        members. Embeddings, norms and evaluation are left out."""
        c = self.cfg
        per_token = 6 * (self.models[0].matmul_params() + c.depth * c.context * c.width)
        return float(per_token) * c.tokens * c.members

    def step(self, i: int, sequences: int) -> float:
        """One optimizer step of every member on its next sequences windows;
        returns the summed loss over members and predicted characters."""
        import torch
        from torch.nn import functional as F

        c = self.cfg
        lr = constant_lr(c.lr, i) if c.constant else cosine_lr(c.lr, i, self.steps, min(100, self.steps // 20))
        total = 0.0
        for m, opt, w in zip(self.models, self.opts, self.windows):
            m.train()
            starts = w.next(sequences).to(self.device)
            xy = self.train_data[starts[:, None] + self.offsets].long()
            logits = m(xy[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xy[:, 1:].reshape(-1))
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            total += float(loss) * xy[:, 1:].numel()
        return total

    def evaluate(self, cancelled: CancelEvent) -> float:
        """The ensemble's mean loss (nats/char) on validation characters
        64 … 64+eval_tokens-1. Each target is predicted from at least half
        a context of history: windows of context characters advance by
        half a context and score only their last half."""
        import torch

        c, n = self.cfg, self.cfg.eval_tokens
        starts, skip = eval_windows(n, c.context)
        starts = starts.to(self.device)
        logps = []
        with torch.no_grad():
            for m in self.models:
                m.eval()
                parts = []
                for b in range(0, len(starts), 128):
                    cancelled.check()
                    q = starts[b:b + 128]
                    xy = self.val_data[(q[:, None] + self.offsets).clamp(max=len(self.val_data) - 1)].long()
                    lp = torch.log_softmax(m(xy[:, :-1]).float(), dim=-1)
                    lp = lp.gather(2, xy[:, 1:, None]).squeeze(2)[:, skip:]
                    parts.append(lp.reshape(-1))
                logps.append(torch.cat(parts)[:n])
        mix = torch.logsumexp(torch.stack(logps), dim=0) - math.log(len(logps))
        return float(-mix.mean())

    def train(self, report: Report, cancelled: CancelEvent, request: Optional[TrialRequest] = None) -> dict:
        """Runs every step, reporting train_loss (mean since the last
        report), val_loss, tokens and tokens_per_second about eight times
        (or every report_every steps); returns the last report.

        With a request, it resumes from request.resume and saves a
        checkpoint every checkpoint_every steps and when the host asks
        (never after the last step, except under the constant schedule when
        the last step falls on checkpoint_every: a longer run may continue
        from it). A checkpoint on a report step rides
        on its report; one between reports gets a report of its own with
        val_loss and tokens but no train_loss, which keeps accumulating
        into the next regular report, so checkpoints add reports without
        changing the others."""
        c = self.cfg
        every = c.every or max(1, self.steps // 8)
        total_seq = math.ceil(c.tokens / c.context)
        loop = {"step": 0, "loss_sum": 0.0, "loss_n": 0, "seen": 0, "train_time": 0.0}
        if request is not None and request.resume is not None:
            loop = self.restore(request.resume.dir, request.resume.step)
        keeps = request is not None and request.keeps_checkpoints()
        last: dict = {}
        if loop["step"] == self.steps:
            # Resumed after the last step (a checkpoint a longer run may
            # continue, then the attempt died before its result): the
            # result is the model's as it stands.
            return {
                METRIC_VAL_LOSS: self.evaluate(cancelled),
                METRIC_TRAIN_LOSS: loop.get("train_loss", math.nan),
                METRIC_TOKENS: float(min(loop["seen"], c.tokens)),
                "tokens_per_second": loop["seen"] * c.members / max(loop["train_time"], 1e-9),
            }
        for i in range(loop["step"], self.steps):
            cancelled.check()
            seqs = min(c.batch, total_seq - i * c.batch)
            t0 = time.perf_counter()
            loop["loss_sum"] += self.step(i, seqs)
            loop["train_time"] += time.perf_counter() - t0
            loop["loss_n"] += seqs * c.context * c.members
            loop["seen"] += seqs * c.context
            loop["step"] = i + 1
            regular = (i + 1) % every == 0 or i + 1 == self.steps
            on_every = c.checkpoint_every > 0 and (i + 1) % c.checkpoint_every == 0
            if i + 1 < self.steps:
                save = keeps and (request.checkpoint_wanted() or on_every)
            else:
                save = keeps and c.constant and on_every
            if not regular and not save:
                continue
            values = {
                METRIC_VAL_LOSS: self.evaluate(cancelled),
                METRIC_TOKENS: float(min(loop["seen"], c.tokens)),
                "tokens_per_second": loop["seen"] * c.members / max(loop["train_time"], 1e-9),
            }
            if regular:
                values[METRIC_TRAIN_LOSS] = loop["loss_sum"] / loop["loss_n"]
                loop["loss_sum"], loop["loss_n"] = 0.0, 0
                loop["train_loss"] = values[METRIC_TRAIN_LOSS]
                last = values
            path = None
            if save:
                try:
                    path = request.new_checkpoint(i + 1)
                except NoCheckpoints:
                    path = None
                else:
                    self.save(path, loop)
            report(i + 1, dict(values), checkpoint=path)
        return last

    # A checkpoint is one file, state.pt, written by torch.save: the loop's
    # counters, and per member the model's and the optimizer's state dicts
    # and the data order (its generator's state, the epoch's window order
    # and the position in it), with the process's torch (and CUDA) RNG
    # state, which drives dropout. Python's and numpy's generators are
    # saved too, for code that adds draws from them; this method makes
    # none. Everything in it is a tensor or a plain value, so torch 2 loads
    # it with weights_only (no unpickled code from a checkpoint store).
    STATE_FILE = "state.pt"
    FORMAT = 1

    def save(self, path: str, loop: dict) -> None:
        """Writes a checkpoint of the members and the loop's counters into
        the directory path."""
        import numpy
        import torch

        np_state = numpy.random.get_state()
        state = {
            "format": self.FORMAT,
            "steps": self.steps,
            "schedule": "constant" if self.cfg.constant else "cosine",
            "loop": dict(loop),
            "members": [
                {"model": m.state_dict(), "opt": opt.state_dict(), "gen": w.gen.get_state(),
                 "order": w.order, "i": w.i}
                for m, opt, w in zip(self.models, self.opts, self.windows)
            ],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "python_rng": random.getstate(),
            "numpy_rng": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]],
        }
        torch.save(state, os.path.join(path, self.STATE_FILE))

    def restore(self, path: str, step: int) -> dict:
        """Loads a checkpoint saved after step and returns the loop's
        counters; raises ValueError when it is of another run."""
        import numpy
        import torch

        file = os.path.join(path, self.STATE_FILE)
        if int(torch.__version__.split(".")[0]) >= 2:
            state = torch.load(file, map_location="cpu", weights_only=True)
        else:
            # Torch 1.x (Debian's 1.13) has a weights_only loader that
            # cannot read a float, and so no optimizer state: there the
            # file is unpickled in full, as trusted as the store the agent
            # keeps its checkpoints in.
            state = torch.load(file, map_location="cpu")
        if not isinstance(state, dict) or state.get("format") != self.FORMAT:
            raise ValueError(f"resume: {file} is not a torch_charlm checkpoint of format {self.FORMAT}")
        loop = state["loop"]
        if loop["step"] != step:
            raise ValueError(f"resume: the checkpoint holds step {loop['step']}, but the host resumes from step {step}")
        c = self.cfg
        if state.get("schedule", "cosine") != ("constant" if c.constant else "cosine"):
            raise ValueError(f"resume: the checkpoint was taken under schedule {state.get('schedule', 'cosine')}, "
                             "this run has another: it was taken with other parameters")
        if len(state["members"]) != len(self.models):
            raise ValueError(f"resume: the checkpoint holds {len(state['members'])} members, this run has "
                             f"{len(self.models)}: it was taken with other parameters")
        if state["steps"] != self.steps:
            if not c.constant:
                raise ValueError(f"resume: the checkpoint is of a run of {state['steps']} steps, this one has "
                                 f"{self.steps}: it was taken with other parameters (a run continued into a "
                                 "larger budget needs a schedule that does not depend on it, such as "
                                 "schedule: constant)")
            if step >= self.steps:
                raise ValueError(f"resume: the checkpoint is after step {step}, past this run's {self.steps} "
                                 "steps: only a longer run continues a shorter one")
            if loop["seen"] != step * c.batch * c.context:
                raise ValueError(f"resume: the checkpoint's run ended on a partial batch ({loop['seen']} "
                                 f"characters in {step} steps of {c.batch * c.context}): a longer run would "
                                 "not have trained it; make tokens a multiple of batch × context")
        for k, (m, opt, w, saved) in enumerate(zip(self.models, self.opts, self.windows, state["members"])):
            try:
                m.load_state_dict(saved["model"])
                opt.load_state_dict(saved["opt"])
            except (RuntimeError, ValueError, KeyError) as e:
                raise ValueError(f"resume: member {k}: the checkpoint was taken with other parameters: {e}") from e
            w.gen.set_state(saved["gen"])
            w.order, w.i = saved["order"], saved["i"]
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        py = state["python_rng"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        np_state = state["numpy_rng"]
        numpy.random.set_state((np_state[0], np_state[1].numpy().astype("uint32"), *np_state[2:]))
        return dict(loop)
