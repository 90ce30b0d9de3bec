#!/usr/bin/python3
"""Optuna's dispatch throughput on this machine, the peer figure for
`asymptote bench`.

Each run creates a fresh study, forks WORKERS processes that load it and
wait at a barrier, then times how long they take to run TRIALS no-op
trials between them (RandomSampler, the objective of perf.md section 1).
Interpreter start-up and `import optuna` are outside the timed window.

For PostgreSQL the script creates a cluster in a temporary directory,
starts it on 127.0.0.1 with the stock configuration (fsync on), and
removes it at exit. It prints one JSON object per run on stdout.

    optuna_bench.py --storages sqlite,postgresql,journal --workers 1,2,4,8 \
        --trials 100 --journal-trials 500 --repeats 3

With --serve it runs what it is asked instead, so that `asymptote bench`
can interleave Optuna's runs with its own (one Python process and one
PostgreSQL cluster for the whole suite): it prints {"ready": true} once the
storages in --storages are set up, then reads one JSON request a line on
stdin, {"storage": "postgresql", "workers": 2, "trials": 100, "repeat": 0},
and answers each with the run's JSON line. It exits at the end of stdin.
"""

import argparse
import json
import multiprocessing as mp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", 1e-5, 1, log=True)
    z = trial.suggest_int("z", 0, 10)
    return x * x + y + z


def make_storage(kind, url):
    if kind == "journal":
        from optuna.storages import JournalFileStorage, JournalStorage
        return JournalStorage(JournalFileStorage(url))
    return url


def worker(kind, url, name, n, barrier, done):
    study = optuna.load_study(study_name=name, storage=make_storage(kind, url),
                              sampler=optuna.samplers.RandomSampler())
    barrier.wait()
    try:
        study.optimize(objective, n_trials=n, n_jobs=1)
    except Exception as e:  # JournalFileStorage 3.1 breaks with several writers
        done.put((time.monotonic(), repr(e)))
        return
    done.put((time.monotonic(), None))


def collect(procs, done, limit):
    """Waits for every worker's message; a worker that died without one
    counts as failed."""
    out = []
    deadline = time.monotonic() + limit
    while len(out) < len(procs) and time.monotonic() < deadline:
        try:
            out.append(done.get(timeout=0.5))
        except Exception:
            if not any(p.is_alive() for p in procs) and done.empty():
                break
    out += [(time.monotonic(), "worker died")] * (len(procs) - len(out))
    return out


def run_once(kind, url, workers, trials, seq):
    name = "bench-%d" % seq
    optuna.create_study(study_name=name, storage=make_storage(kind, url),
                        sampler=optuna.samplers.RandomSampler())
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    done = ctx.Queue()
    share = [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]
    procs = [ctx.Process(target=worker, args=(kind, url, name, k, barrier, done)) for k in share]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.monotonic()
    got = collect(procs, done, 600)
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    errors = [e for _, e in got if e]
    secs = max(t for t, _ in got) - start
    r = {"storage": kind, "workers": workers, "trials": trials, "seconds": secs,
         "trials_per_s": trials / secs, "failed_workers": len(errors)}
    if errors:
        r["error"] = errors[0][:200]
    return r


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 in a temporary directory."""

    def __init__(self, tmp):
        self.dir = tempfile.mkdtemp(prefix="optuna-pg-", dir=tmp)
        self.data = os.path.join(self.dir, "data")
        bindir = self._bindir()
        self.pg_ctl = os.path.join(bindir, "pg_ctl")
        self.user = None
        if os.geteuid() == 0:
            # initdb refuses to run as root.
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run([os.path.join(bindir, "initdb"), "-D", self.data, "-U", "bench", "--auth=trust", "-E", "UTF8"])
        self._run([self.pg_ctl, "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"), "-o",
                   "-c listen_addresses=127.0.0.1 -p %d -k %s" % (self.port, self.dir), "start"])
        self.url = "postgresql+psycopg2://bench@127.0.0.1:%d/postgres" % self.port

    @staticmethod
    def _bindir():
        base = "/usr/lib/postgresql"
        versions = sorted(os.listdir(base), key=lambda v: int(v.split(".")[0]))
        return os.path.join(base, versions[-1], "bin")

    def _run(self, cmd):
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def fresh(self, seq):
        """Returns the URL of a new, empty database."""
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="bench", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE bench%d" % seq)
        conn.close()
        return self.url.rsplit("/", 1)[0] + "/bench%d" % seq

    def close(self):
        try:
            self._run([self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Runner:
    """Runs one measurement on a fresh study in a fresh database or file."""

    def __init__(self, tmp, storages):
        self.tmp = tempfile.mkdtemp(prefix="optuna-bench-", dir=tmp)
        self.seq = 0
        try:
            self.pg = Postgres(tmp) if "postgresql" in storages else None
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def run(self, kind, workers, trials, rep):
        self.seq += 1
        seq = self.seq
        try:
            if kind == "sqlite":
                url = "sqlite:///" + os.path.join(self.tmp, "s%d.db" % seq)
            elif kind == "journal":
                url = os.path.join(self.tmp, "j%d.log" % seq)
            elif kind == "postgresql" and self.pg:
                url = self.pg.fresh(seq)
            else:
                raise ValueError("storage %r not set up" % kind)
            r = run_once(kind, url, workers, trials, seq)
        except Exception as e:  # a crashed run is reported, not fatal
            r = {"storage": kind, "workers": workers, "trials": trials, "error": repr(e)}
        r["repeat"] = rep
        return r

    def close(self):
        try:
            if self.pg:
                self.pg.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def serve(runner):
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        q = json.loads(line)
        r = runner.run(q["storage"], int(q["workers"]), int(q["trials"]), int(q.get("repeat", 0)))
        print(json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--storages", default="sqlite,postgresql,journal")
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--trials", type=int, default=100, help="trials per run for the RDB storages")
    ap.add_argument("--journal-trials", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--serve", action="store_true", help="run the requests read on stdin (see above)")
    a = ap.parse_args()
    storages = a.storages.split(",")
    runner = Runner(a.tmp, storages)
    try:
        if a.serve:
            serve(runner)
            return
        for rep in range(a.repeats):
            for kind in storages:
                for w in [int(x) for x in a.workers.split(",")]:
                    n = a.journal_trials if kind == "journal" else a.trials
                    print(json.dumps(runner.run(kind, w, n, rep)), flush=True)
    finally:
        runner.close()


if __name__ == "__main__":
    sys.exit(main())
