package bus

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitFinite(t *testing.T) {
	finite, non := SplitFinite(map[string]float64{
		"loss": 1.5, "big": math.MaxFloat64, "tiny": 5e-324,
		"nan": math.NaN(), "up": math.Inf(1), "down": math.Inf(-1),
	})
	if len(finite) != 3 || finite["big"] != math.MaxFloat64 || finite["tiny"] != 5e-324 {
		t.Errorf("finite = %v, want loss, big and tiny unchanged", finite)
	}
	want := map[string]string{"nan": NaN, "up": PosInf, "down": NegInf}
	if len(non) != len(want) {
		t.Fatalf("non-finite = %v, want %v", non, want)
	}
	for k, w := range want {
		if non[k] != w {
			t.Errorf("non_finite[%s] = %q, want %q", k, non[k], w)
		}
	}
	if f, n := SplitFinite(map[string]float64{"a": 1}); n != nil || len(f) != 1 {
		t.Errorf("all finite: %v %v", f, n)
	}
	// What the agent sends must encode.
	ev := &Event{AttemptRef: AttemptRef{Study: "s", Trial: "t", Attempt: 1}, Kind: EventFinished, Outcome: OutcomeSucceeded, Node: "n", Metrics: finite, NonFinite: non}
	var back Event
	if err := Decode(Encode(ev), &back); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if back.NonFinite["nan"] != NaN {
		t.Errorf("decoded non_finite = %v", back.NonFinite)
	}
}

func TestDecodeRefusesWhatAMethodMayNotReport(t *testing.T) {
	ref := `"study":"s","trial":"t","attempt":1,"kind":"finished","outcome":"succeeded","node":"n"`
	many := make([]string, MaxMetrics+1)
	for i := range many {
		many[i] = `"m` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26) + `":1`
	}
	cases := []struct {
		name, msg, want string
	}{
		{"bad word", `{` + ref + `,"non_finite":{"loss":"nan"}}`, `"nan" is not NaN`},
		{"too many", `{` + ref + `,"metrics":{` + strings.Join(many, ",") + `}}`, "over the limit of 256"},
		{"long name", `{` + ref + `,"metrics":{"` + strings.Repeat("n", MaxMetricName+1) + `":1}}`, "over the limit of 128"},
		{"empty name", `{` + ref + `,"metrics":{"":1}}`, "empty name"},
		{"overflow", `{` + ref + `,"metrics":{"loss":1e309}}`, "decode"},
		{"wrong type", `{` + ref + `,"metrics":{"loss":"1"}}`, "decode"},
		{"truncated", `{` + ref[:40], "decode"},
		{"not json", "\x00\xff garbage", "decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev Event
			err := Decode([]byte(c.msg), &ev)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Decode = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestHeartbeatBounds(t *testing.T) {
	gpus := strings.Repeat(`{"index":0},`, MaxGPUs+1)
	var hb Heartbeat
	err := Decode([]byte(`{"node":"n","resources":{"cpu":1,"memory":1,"gpus":[`+strings.TrimSuffix(gpus, ",")+`]}}`), &hb)
	if err == nil || !strings.Contains(err.Error(), "resources.gpus") {
		t.Errorf("Decode = %v, want resources.gpus over the limit", err)
	}
}

func TestClip(t *testing.T) {
	if s := Clip("short", 10); s != "short" {
		t.Errorf("Clip of a short string = %q", s)
	}
	long := "HEAD" + strings.Repeat("é", 50_000) + "TAIL"
	s := Clip(long, MaxErrorBytes)
	if len(s) > MaxErrorBytes {
		t.Errorf("clipped to %d bytes, want at most %d", len(s), MaxErrorBytes)
	}
	if !strings.HasPrefix(s, "HEAD") || !strings.HasSuffix(s, "TAIL") || !strings.Contains(s, "bytes cut") {
		t.Errorf("clip lost its head, its tail or its marker: %q...%q", s[:20], s[len(s)-20:])
	}
	if !utf8.ValidString(s) {
		t.Error("clipping split a rune")
	}
}

func TestCheckMetrics(t *testing.T) {
	m := map[string]float64{}
	for i := range MaxMetrics {
		m[strings.Repeat("k", 1+i%100)+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = 1
	}
	if err := CheckMetrics(m); err != nil {
		t.Errorf("%d metrics: %v", len(m), err)
	}
	m["one-more"] = 1
	if err := CheckMetrics(m); err == nil || !strings.Contains(err.Error(), "257 metrics") {
		t.Errorf("CheckMetrics = %v, want 257 over the limit", err)
	}
}

func TestCheckpointEventKey(t *testing.T) {
	sum := strings.Repeat("a", 64)
	ck := func(key string) string {
		return `{"study":"s","trial":"t","attempt":1,"kind":"checkpoint","node":"n","checkpoint":{"attempt":1,"step":5,"key":"` + key + `","size":10,"sha256":"` + sum + `"}}`
	}
	cases := []struct {
		name, key, want string
	}{
		{"fine", "s/t/1-5", ""},
		{"empty", "", "key: empty"},
		{"long", strings.Repeat("k", maxCheckpointKey+1), "over the limit of 512"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev Event
			err := Decode([]byte(ck(c.key)), &ev)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Decode = %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Decode = %v, want an error with %q", err, c.want)
			}
		})
	}
}
