"""The KJV corpus with the exact train/validation split of the Go methods.

This re-implements plugins/methods/corpus (kjv.go, locate.go) so that
torch_charlm trains on the same unique-token prefixes and is scored on the
same validation characters as charlm and ngram: the same search path for
kjv.txt, the same size check, the same 1 KiB blocks with every tenth block
held out, and the same block order, shuffled with Go's math/rand/v2 PCG
(DXSM output) seeded with (0x6b6a76, 1). A Go test compares both byte for
byte (plugins/python/python_test.go).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Optional, Sequence

KJV_FILE = "kjv.txt"
KJV_SIZE = 4298239
BLOCK_SIZE = 1024
VAL_EVERY = 10
# MAX_CONTEXT: evaluation predicts the validation split from this position
# on, so every model is scored on the same characters.
MAX_CONTEXT = 64
SPLIT_SEED = 0x6B6A76
DATA_DIR_ENV = "ASYMPTOTE_DATA_DIR"
INSTALL_HINT = ("run scripts/install-data.sh from the asymptote checkout (as root, or with sudo: it installs "
                "Debian's bible-kjv and dataset-fashion-mnist and writes kjv.txt)")

_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1
_MUL = (2549297995355413924 << 64) | 4865540595714422341
_INC = (6364136223846793005 << 64) | 1442695040888963407
_CHEAP_MUL = 0xDA942042E4DD58B5


class PCG:
    """Go's math/rand/v2 PCG: a 128-bit LCG with DXSM output."""

    def __init__(self, seed1: int, seed2: int) -> None:
        self.state = ((seed1 & _M64) << 64) | (seed2 & _M64)

    def uint64(self) -> int:
        """Advances the state and returns the next 64-bit output."""
        self.state = (self.state * _MUL + _INC) & _M128
        hi, lo = self.state >> 64, self.state & _M64
        hi ^= hi >> 32
        hi = (hi * _CHEAP_MUL) & _M64
        hi ^= hi >> 48
        return (hi * (lo | 1)) & _M64


class MissingData(FileNotFoundError):
    """Raised when kjv.txt is not installed; the message says how to install it."""


def default_dirs() -> list[str]:
    """The directories searched for data, in order: $ASYMPTOTE_DATA_DIR,
    /var/lib/asymptote/data and the user cache dir's asymptote/data (as Go's
    os.UserCacheDir finds it)."""
    dirs = []
    if os.environ.get(DATA_DIR_ENV):
        dirs.append(os.environ[DATA_DIR_ENV])
    dirs.append("/var/lib/asymptote/data")
    cache = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.environ["HOME"], ".cache")
                                                 if os.environ.get("HOME") else "")
    if cache:
        dirs.append(os.path.join(cache, "asymptote", "data"))
    return dirs


def find(dirs: Optional[Sequence[str]], name: str) -> str:
    """Returns the first dirs[i]/name that is a file (dirs None: default_dirs())."""
    looked = []
    for d in default_dirs() if dirs is None else dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
        looked.append(p)
    raise MissingData(f"data not installed: {name} not found (looked at {', '.join(looked)}); {INSTALL_HINT}")


@dataclass(frozen=True)
class Text:
    """A character corpus as symbol ids: vocab maps an id to its byte (the
    file's distinct bytes, sorted); train and val are the splits."""

    vocab: bytes
    train: bytes
    val: bytes

    def eval_size(self) -> int:
        """How many validation targets exist: MAX_CONTEXT to the end of val."""
        return len(self.val) - MAX_CONTEXT

    def decode(self, ids: bytes) -> bytes:
        """Maps symbol ids back to the text's bytes."""
        return bytes(self.vocab[i] for i in ids)


def _shuffle(src: PCG, s: list) -> None:
    for i in range(len(s) - 1, 0, -1):
        j = src.uint64() % (i + 1)
        s[i], s[j] = s[j], s[i]


def split(raw: bytes) -> Text:
    """Maps raw to symbol ids and splits it as plugins/methods/corpus.Split does."""
    vocab = bytes(sorted(set(raw)))
    if len(vocab) > 127:
        raise ValueError(f"text has {len(vocab)} distinct bytes; at most 127 are supported")
    table = bytearray(256)
    for i, b in enumerate(vocab):
        table[b] = i
    ids = raw.translate(bytes(table))
    train, val = [], []
    for i in range((len(ids) + BLOCK_SIZE - 1) // BLOCK_SIZE):
        blk = ids[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE]
        (val if i % VAL_EVERY == VAL_EVERY - 1 else train).append(blk)
    rng = PCG(SPLIT_SEED, 1)
    _shuffle(rng, train)
    _shuffle(rng, val)
    t = Text(vocab=vocab, train=b"".join(train), val=b"".join(val))
    if len(t.val) < MAX_CONTEXT + 1:
        raise ValueError(f"text too short: {len(raw)} bytes")
    return t


_cache: dict[str, Text] = {}
_cache_lock = threading.Lock()


def load_kjv(dirs: Optional[Sequence[str]] = None) -> Text:
    """Finds kjv.txt, checks its size and returns it split; cached per path
    for the process's life (a plugin process serves many trials)."""
    path = find(dirs, KJV_FILE)
    with _cache_lock:
        if path in _cache:
            return _cache[path]
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) != KJV_SIZE:
            raise MissingData(f"{path} has {len(raw)} bytes, want {KJV_SIZE} (bible -l79 from bible-kjv 4.38); "
                              f"{INSTALL_HINT}")
        t = split(raw)
        _cache[path] = t
        return t
