"""The HTTP client and the DataFrames it builds."""

import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pandas as pd

DEFAULT_URL = "http://127.0.0.1:8470"

# Trial columns that are not parameters or metrics.
_TRIAL_COLUMNS = ["trial", "index", "state", "seed", "attempts", "objective", "error"]


class AsymptoteError(Exception):
    """An error from the API: what is wrong and, for a bad input, the field."""

    def __init__(self, message, field=None, status=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def __str__(self):
        return f"{self.field}: {self.message}" if self.field else self.message


class Client:
    """A connection to a coordinator's HTTP API.

    url defaults to $ASYMPTOTE_URL, then http://127.0.0.1:8470 (what
    `asymptote dev` and `asymptote coordinator` serve on by default).
    token is for a coordinator started with -http-tokens: it defaults to
    $ASYMPTOTE_TOKEN, then the contents of the file $ASYMPTOTE_TOKEN_FILE
    names (an identity's NAME.http-token, which its environment file from
    `asymptote secure init` points to); without either, no token is sent.
    """

    def __init__(self, url=None, timeout=300, token=None):
        self.url = (url or os.environ.get("ASYMPTOTE_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        if token is None:
            token = os.environ.get("ASYMPTOTE_TOKEN")
        if token is None and os.environ.get("ASYMPTOTE_TOKEN_FILE"):
            path = os.environ["ASYMPTOTE_TOKEN_FILE"]
            try:
                with open(path) as f:
                    token = f.read().strip()
            except OSError as e:
                raise AsymptoteError(f"ASYMPTOTE_TOKEN_FILE={path}: {e.strerror}", field="token") from None
        self._token = token or None

    def __repr__(self):
        return f"asymptote.Client({self.url!r})"

    # -- transport ---------------------------------------------------------

    def _request(self, method, path, params=None, body=None, content_type=None, stream=False, headers=False):
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        req = urllib.request.Request(url, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self._token:
            req.add_header("Authorization", "Bearer " + self._token)
        try:
            resp = urllib.request.urlopen(req, timeout=None if stream else self.timeout)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                doc = json.loads(raw)
                raise AsymptoteError(doc.get("error", raw.decode()), doc.get("field"), e.code) from None
            except ValueError:
                raise AsymptoteError(raw.decode(errors="replace"), status=e.code) from None
        except urllib.error.URLError as e:
            raise AsymptoteError(
                f"no asymptote API at {self.url} ({e.reason}); start `asymptote dev` or pass "
                "Client(url) with a coordinator's -http address"
            ) from None
        if stream:
            return resp
        with resp:
            data = resp.read()
            return (data, resp.headers) if headers else data

    def _json(self, path, params=None):
        return json.loads(self._request("GET", path, params))

    # -- studies -----------------------------------------------------------

    def studies(self):
        """Every study: one row each, with its trials counted by state."""
        rows = []
        for s in self._json("/api/v1/studies")["studies"]:
            row = {k: s.get(k) for k in ("name", "state", "method", "objective", "direction", "trials", "created", "updated")}
            for state, n in (s.get("counts") or {}).items():
                row[state] = n
            rows.append(row)
        df = pd.DataFrame(rows)
        for col in ("created", "updated"):
            if col in df:
                df[col] = pd.to_datetime(df[col], utc=True)
        return df

    def study(self, name):
        """One study's record, as a dict."""
        return self._json(f"/api/v1/studies/{_q(name)}")

    def submit(self, spec):
        """Submits a spec: a path to a YAML file, YAML text, or a dict.

        Returns the coordinator's reply (study, added, known). A spec error
        raises AsymptoteError naming the field, and nothing is submitted.
        """
        if isinstance(spec, dict):
            text, name = spec_yaml(spec), "python"
        elif isinstance(spec, (str, os.PathLike)) and "\n" not in str(spec) and os.path.exists(spec):
            with open(spec, encoding="utf-8") as f:
                text, name = f.read(), os.fspath(spec)
        elif isinstance(spec, str):
            text, name = spec, "python"
        else:
            raise TypeError("spec: want a YAML file's path, YAML text or a dict")
        body = json.dumps({"spec": text, "spec_file": name}).encode()
        return json.loads(self._request("POST", "/api/v1/studies", body=body, content_type="application/json"))

    # -- trials ------------------------------------------------------------

    def trials(self, study, state=None, sort=None, limit=None):
        """The study's trials as a DataFrame, one row per trial.

        Columns: trial, index, state, seed, attempts, one per parameter
        (param.NAME when a metric shares the name), objective, one per
        result metric, error; and config, the same for every seed of one
        configuration (for replicates()). Filtering (state=), sorting
        (sort="objective" or "-objective", a parameter or a metric) and
        limit= run on the server.
        """
        params = {"format": "csv"}
        if state:
            params["state"] = [state] if isinstance(state, str) else list(state)
        if sort:
            params["sort"] = sort
        if limit is not None:
            params["limit"] = int(limit)
        raw, hdr = self._request("GET", f"/api/v1/studies/{_q(study)}/trials", params, headers=True)
        df = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=[""], dtype={"trial": str, "error": str, "state": str})
        if "error" in df:
            df["error"] = df["error"].fillna("")
        df.attrs["params"] = [c for c in (hdr.get("X-Asymptote-Params") or "").split(",") if c]
        df.attrs["metrics"] = [c for c in (hdr.get("X-Asymptote-Metrics") or "").split(",") if c]
        df["config"] = _config_key(df)
        return df

    def trial(self, study, trial):
        """One trial's record with its attempts, as a dict."""
        return self._json(f"/api/v1/studies/{_q(study)}/trials/{_q(trial)}")

    # -- metric history ------------------------------------------------------

    def history(self, study, trials=None, points=None):
        """The metric history as a tidy DataFrame, one row per metric value.

        Columns: trial, attempt, step, time, tokens, flops, metric, value.
        tokens and flops are the values the method reported at that step,
        when it did (NaN otherwise), so curves can be drawn against compute;
        they are not repeated as metrics. trials= limits it to some trials;
        points=N keeps at most N steps per attempt, evenly spread (the
        store keeps every step). One request for the whole study: the
        server sends its column-wise chunks as they are stored.
        """
        params = {"format": "columns"}
        if trials is not None:
            params["trial"] = [trials] if isinstance(trials, str) else list(trials)
        if points:
            params["points"] = int(points)
        resp = self._request("GET", f"/api/v1/studies/{_q(study)}/history", params, stream=True)
        with resp:
            return _tidy(resp)

    # -- analysis ------------------------------------------------------------

    def fit(self, study, law=None, x=None, group=None, bootstrap=None):
        """Fits the study's analysis plan now (law=, x=, group= override it).

        Returns a Fit, or a list of them, one per group, when the plan
        groups its trials.
        """
        params = {k: v for k, v in (("law", law), ("x", x), ("group", group), ("bootstrap", bootstrap)) if v is not None}
        doc = self._json(f"/api/v1/studies/{_q(study)}/fit", params)
        fits = [Fit(f) for f in doc["fits"]]
        return fits[0] if len(fits) == 1 and not doc.get("group") else fits

    def crossover(self, studies, lo, hi, bootstrap=None, noise=None):
        """Where two recipes' curves cross in [lo, hi]: two studies, or one
        study whose analysis plan groups two recipes."""
        studies = [studies] if isinstance(studies, str) else list(studies)
        params = {"study": studies, "lo": lo, "hi": hi}
        if bootstrap is not None:
            params["bootstrap"] = int(bootstrap)
        if noise is not None:
            params["noise"] = noise
        return Crossover(self._json("/api/v1/crossover", params))

    # -- live updates ----------------------------------------------------------

    def watch(self, study, until_done=True):
        """Yields the study's events as they happen: ("study", record) and
        ("trial", record), starting with every current record. With
        until_done, it stops once the study is done or cancelled and no
        trial runs."""
        resp = self._request("GET", f"/api/v1/studies/{_q(study)}/events", stream=True)
        kind, states, study_state = None, {}, None
        with resp:
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: "):
                    rec = json.loads(line[len("data: "):])
                    if kind == "trial":
                        states[rec["id"]] = rec["state"]
                    elif kind == "study":
                        study_state = rec.get("state")
                    yield kind, rec
                    if until_done and study_state in ("done", "cancelled") and not any(
                        s in ("pending", "dispatched", "running") for s in states.values()
                    ):
                        return

    def wait(self, study, timeout=None):
        """Blocks until the study is done; returns its trials."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in self.watch(study):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"study {study} not done within {timeout}s")
        return self.trials(study)


class Fit:
    """A fitted scaling law: its parameters with bootstrap intervals."""

    def __init__(self, doc):
        self.raw = doc
        self.law = doc.get("law")
        self.x = doc.get("x")
        self.group = doc.get("group", "")
        self.points = doc.get("points", 0)
        self.r2 = doc.get("r2")
        self.error = doc.get("error", "")
        self.warnings = doc.get("warnings") or []
        self.params = pd.DataFrame(
            [{"name": p["name"], "value": p["value"], "lo": p.get("lo", float("nan")), "hi": p.get("hi", float("nan"))} for p in doc.get("params") or []],
            columns=["name", "value", "lo", "hi"],
        ).set_index("name")

    def __getitem__(self, name):
        return self.params.loc[name, "value"]

    def interval(self, name):
        """The bootstrap interval (lo, hi) of a parameter."""
        row = self.params.loc[name]
        return row["lo"], row["hi"]

    def __repr__(self):
        if self.error:
            return f"<Fit {self.law} over {self.x}: {self.error}>"
        parts = ", ".join(f"{n}={r.value:.4g}" for n, r in self.params.iterrows())
        return f"<Fit {self.law} over {self.x}{' [' + self.group + ']' if self.group else ''}: {parts}>"

    def _repr_html_(self):
        head = f"<b>{self.law}</b> law over <b>{self.x}</b>"
        if self.group:
            head += f", group {self.group}"
        if self.error:
            return head + f"<br>{self.error}"
        r2 = f", R² {self.r2:.4f}" if self.r2 is not None else ""
        return f"{head}: {self.points} points{r2}" + self.params.to_html()


class Crossover:
    """Where two fitted curves cross, with bootstrap intervals."""

    def __init__(self, doc):
        self.raw = doc
        self.names = doc["names"]
        self.replicates = doc.get("replicates", 0)
        self.p_count = doc.get("p_count") or []
        self.within_noise = doc.get("within_noise", False)
        self.roots = pd.DataFrame(
            [{"x": r["x"], "lo": r.get("lo", float("nan")), "hi": r.get("hi", float("nan")), "extrapolated": r["extrapolated"]} for r in doc["roots"]],
            columns=["x", "lo", "hi", "extrapolated"],
        )

    def __repr__(self):
        roots = ", ".join(f"{r.x:.4g}" for r in self.roots.itertuples()) or "none"
        return f"<Crossover {self.names[0]} vs {self.names[1]}: roots {roots}>"

    def _repr_html_(self):
        return f"<b>{self.names[0]}</b> against <b>{self.names[1]}</b>, {self.replicates} paired replicates" + self.roots.to_html()


def replicates(trials, value="objective"):
    """Groups the seeds of each configuration: one row per configuration
    with its parameters, the number of seeds n, and the mean, standard
    deviation and standard error of value over the succeeded ones."""
    ok = trials[trials["state"] == "succeeded"]
    params = [c for c in trials.attrs.get("params", []) if c in trials and c != "seed"]
    g = ok.groupby("config", sort=False)
    out = g[value].agg(n="count", mean="mean", std="std").reset_index()
    out["sem"] = out["std"] / out["n"].pow(0.5)
    first = ok.drop_duplicates("config")[["config"] + [p for p in params if p in ok]]
    return first.merge(out, on="config").reset_index(drop=True)


def _config_key(df):
    """A key equal for the trials that differ only by seed."""
    params = [c for c in df.attrs.get("params", []) if c in df]
    if not params:
        return pd.Series(["" for _ in range(len(df))], index=df.index)
    return pd.util.hash_pandas_object(df[params].astype(str), index=False).astype("uint64").astype(str)


_WORDS = {"NaN": float("nan"), "+Inf": float("inf"), "-Inf": float("-inf")}
_COLUMNS = ["trial", "attempt", "step", "time", "tokens", "flops", "metric", "value"]


def _tidy(lines):
    """Builds the long history frame from chunk lines: each chunk's columns
    become numpy arrays, concatenated once at the end."""
    codes, attempts, lens = {}, [], []
    tcodes, steps, times = [], [], []
    cols, present = {}, {}
    total = 0
    for raw in lines:
        if not raw.strip():
            continue
        c = json.loads(raw)
        n = len(c["steps"])
        if n == 0:
            continue
        tcodes.append(codes.setdefault(c["trial"], len(codes)))
        attempts.append(c["attempt"])
        lens.append(n)
        steps.append(np.asarray(c["steps"], dtype=np.int64))
        times.append(np.asarray(c["times"], dtype=np.int64))
        values = c.get("values") or {}
        for name in values.keys() - cols.keys():
            cols[name] = [np.full(total, np.nan)] if total else []
            present[name] = [np.zeros(total, dtype=bool)] if total else []
        missing = c.get("missing") or {}
        nonfinite = c.get("non_finite") or {}
        for name in cols:
            if name in values:
                col = np.asarray(values[name], dtype=np.float64)
                pres = np.ones(n, dtype=bool)
                if name in missing:
                    col[missing[name]] = np.nan
                    pres[missing[name]] = False
                for at in nonfinite.get(name, ()):
                    col[at["i"]] = _WORDS.get(at["w"], np.nan)
            else:
                col, pres = np.full(n, np.nan), np.zeros(n, dtype=bool)
            cols[name].append(col)
            present[name].append(pres)
        total += n
    if total == 0:
        return pd.DataFrame({c: [] for c in _COLUMNS})
    lens = np.asarray(lens)
    trial = np.repeat(np.asarray(tcodes), lens)
    attempt = np.repeat(np.asarray(attempts, dtype=np.int64), lens)
    step = np.concatenate(steps)
    us = np.concatenate(times)
    full = {k: np.concatenate(v) for k, v in cols.items()}
    mask = {k: np.concatenate(v) for k, v in present.items()}
    side = {acc: full.pop(acc, np.full(total, np.nan)) for acc in ("tokens", "flops")}
    for acc in ("tokens", "flops"):
        mask.pop(acc, None)
    names = sorted(full)
    sel = [np.flatnonzero(mask[m]) for m in names]
    idx = np.concatenate(sel) if sel else np.zeros(0, dtype=np.int64)
    when = pd.to_datetime(us[idx], unit="us", utc=True)
    when = when.where(us[idx] != 0)  # reports without a time
    return pd.DataFrame({
        "trial": pd.Categorical.from_codes(trial[idx], categories=list(codes)),
        "attempt": attempt[idx],
        "step": step[idx],
        "time": when,
        "tokens": side["tokens"][idx],
        "flops": side["flops"][idx],
        "metric": pd.Categorical.from_codes(np.repeat(np.arange(len(names)), [len(s) for s in sel]), categories=names),
        "value": np.concatenate([full[m][s] for m, s in zip(names, sel)]) if names else np.zeros(0),
    })


def spec_yaml(spec):
    """Writes a spec given as a dict as the YAML a coordinator reads: block
    mappings, with lists and scalars as JSON flow values."""
    lines = []

    def emit(obj, indent):
        for k, v in obj.items():
            if isinstance(v, dict):
                lines.append(" " * indent + f"{k}:")
                emit(v, indent + 2)
            else:
                lines.append(" " * indent + f"{k}: {json.dumps(v)}")

    emit(spec, 0)
    return "\n".join(lines) + "\n"


def _q(s):
    return urllib.parse.quote(str(s), safe="")
