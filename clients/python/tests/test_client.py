"""The Python client against a real `asymptote dev` (ASYMPTOTE_URL): submit,
watch, trials, history, fit, crossover and replicates, with assertions on
values. clients/python/client_test.go starts the server and runs these."""

import math
import os

import pandas as pd
import pytest

import asymptote

# The synthetic method's law with its defaults, noise 0: one epoch over D
# tokens, so the effective data is D (plugins/methods/synthetic).
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
D = 2e9
SIZES = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8]
STEPS = 5


def law(n, wd=0.1, d=D):
    # A weight decay away from its optimum (0.1 at one epoch) costs
    # 1 + 0.02 ln^2((wd + 1e-4) / (0.1 + 1e-4)).
    return (E + A / n**ALPHA + B / d**BETA) * (1 + 0.02 * math.log((wd + 1e-4) / (0.1 + 1e-4)) ** 2)


@pytest.fixture(scope="module")
def client():
    url = os.environ.get("ASYMPTOTE_URL")
    if not url:
        pytest.fail("ASYMPTOTE_URL is not set; run these through go test ./clients/python, which starts asymptote dev")
    return asymptote.Client(url)


@pytest.fixture(scope="module")
def study(client):
    spec = {
        "name": "pyclient",
        "method": "synthetic",
        "space": {"params": SIZES, "weight_decay": [0.1, 0.4]},
        "fixed": {"tokens": D, "steps": STEPS},
        "seeds": [0, 1],
        "analysis": {"fit": {"law": "power", "x": "params", "best_over": ["weight_decay"], "bootstrap": 100}},
        "resources": {"cpu": 0.25, "memory": "16MiB"},
    }
    reply = client.submit(spec)
    assert reply["study"] == "pyclient"
    assert reply["added"] == 24
    events = list(client.watch("pyclient"))
    kinds = {k for k, _ in events}
    assert kinds == {"study", "trial"}
    final = {}
    for k, rec in events:
        if k == "trial":
            final[rec["id"]] = rec["state"]
    assert len(final) == 24 and set(final.values()) == {"succeeded"}
    return "pyclient"


def test_trials(client, study):
    df = client.trials(study)
    assert len(df) == 24
    assert (df["state"] == "succeeded").all()
    # params and tokens are also metrics the method reports, so their
    # parameter columns are param.params and param.tokens.
    assert df.attrs["params"] == ["param.params", "steps", "param.tokens", "weight_decay"]
    for row in df.itertuples():
        assert row.objective == pytest.approx(law(row.params, row.weight_decay), rel=1e-12)
    # Integers stay integers.
    assert df["steps"].dtype.kind == "i" and (df["steps"] == STEPS).all()
    assert df["seed"].tolist().count(1) == 12
    # Sorting and filtering run on the server.
    best = client.trials(study, sort="objective", limit=3)
    assert len(best) == 3 and best["objective"].is_monotonic_increasing
    assert best["objective"].iloc[0] == df["objective"].min()
    assert client.trials(study, state="failed").empty


def test_replicates(client, study):
    df = client.trials(study)
    reps = asymptote.replicates(df)
    assert len(reps) == 12  # 6 sizes x 2 weight decays, 2 seeds each
    assert (reps["n"] == 2).all()
    assert reps["std"].max() == pytest.approx(0, abs=1e-12)  # noise 0: seeds agree
    assert "seed" not in reps.columns and {"param.params", "weight_decay"} <= set(reps.columns)


def test_history(client, study):
    h = client.history(study)
    assert list(h.columns) == ["trial", "attempt", "step", "time", "tokens", "flops", "metric", "value"]
    val = h[h["metric"] == "val_loss"]
    assert len(val) == 24 * STEPS
    assert set(h["metric"]) == {"val_loss", "train_loss"}  # tokens became a column
    trials = client.trials(study).set_index("trial")
    for tid, curve in val.groupby("trial"):
        curve = curve.sort_values("step")
        assert curve["step"].tolist() == list(range(1, STEPS + 1))
        # tokens grow to D; the last step is the result.
        assert curve["tokens"].iloc[-1] == pytest.approx(D)
        assert curve["tokens"].iloc[0] == pytest.approx(D / STEPS)
        assert curve["value"].iloc[-1] == pytest.approx(trials.loc[tid, "objective"], rel=1e-12)
        assert curve["value"].is_monotonic_decreasing
    one = trials.index[0]
    short = client.history(study, trials=[one], points=2)
    assert set(short["trial"]) == {one}
    assert sorted(short["step"].unique()) == [1, STEPS]


def test_fit(client, study):
    fit = client.fit(study)
    assert isinstance(fit, asymptote.Fit)
    assert fit.error == ""
    assert fit.points == 12  # 6 sizes x 2 seeds, best over weight decay
    # The power law's asymptote absorbs the data term at fixed D.
    assert fit["alpha"] == pytest.approx(ALPHA, rel=1e-3)
    assert fit["A"] == pytest.approx(A, rel=1e-2)
    assert fit["E"] == pytest.approx(E + B / D**BETA, rel=1e-3)
    lo, hi = fit.interval("alpha")
    assert lo <= fit["alpha"] <= hi
    assert "alpha" in fit._repr_html_()


def test_crossover(client):
    spec = {
        "name": "pycross",
        "method": "synthetic",
        "space": {"params": [3e5, 1e6, 3e6, 1e7, 3e7, 1e8], "alpha": [0.2, 0.4]},
        "fixed": {"tokens": 1e12, "E": 1.5, "noise": 0.002},
        "derived": {"A": "100 * 20 ^ ((alpha - 0.2) / 0.2)"},
        "seeds": [0, 1],
        "analysis": {"fit": {"law": "power", "x": "params", "group": "alpha", "bootstrap": 100}},
        "resources": {"cpu": 0.25, "memory": "16MiB"},
    }
    client.submit(spec)
    client.wait("pycross", timeout=60)
    fits = client.fit("pycross")
    assert [f.group for f in fits] == ["0.2", "0.4"]
    x = client.crossover("pycross", lo=1e5, hi=1e9)
    assert len(x.roots) == 1
    root = x.roots.iloc[0]
    assert 2e6 < root["x"] < 5e6  # 100 N^-0.2 = 2000 N^-0.4 at N = 3.2e6
    assert root["lo"] <= 3.2e6 <= root["hi"]
    assert x.replicates == 100


def test_studies(client, study):
    df = client.studies()
    row = df.set_index("name").loc[study]
    assert row["succeeded"] == 24
    assert str(row["created"].tz) == "UTC"


def test_errors(client, study):
    with pytest.raises(asymptote.AsymptoteError) as e:
        client.submit({"name": "bad", "method": "synthetic", "space": {"lr": {"range": [1, 2], "count": 3, "scale": "logg"}}})
    assert e.value.field == "spec.space.lr.scale"
    assert "logg" in str(e.value)
    with pytest.raises(asymptote.AsymptoteError) as e:
        client.trials("no-such-study")
    assert e.value.status == 404 and e.value.field == "study"
    with pytest.raises(asymptote.AsymptoteError, match="no asymptote API"):
        asymptote.Client("http://127.0.0.1:9").studies()


def test_spec_yaml():
    text = asymptote.spec_yaml({"name": "x", "space": {"lr": [0.1, 0.2]}, "fixed": {"act": "gelu"}})
    assert text == 'name: "x"\nspace:\n  lr: [0.1, 0.2]\nfixed:\n  act: "gelu"\n'
