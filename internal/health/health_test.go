package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestReadyz checks the readiness answer for each mix of checks, and that
// liveness stays 200 whatever the checks say.
func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("NATS disconnected") }
	tests := []struct {
		name   string
		checks func(hang probeFunc) []Check
		code   int
		want   []Result
	}{
		{name: "no checks", code: http.StatusOK, want: []Result{}},
		{name: "all pass", checks: func(probeFunc) []Check { return []Check{{"nats", ok}, {"etcd", ok}} }, code: http.StatusOK,
			want: []Result{{Name: "nats", OK: true}, {Name: "etcd", OK: true}}},
		{name: "one fails", checks: func(probeFunc) []Check { return []Check{{"nats", down}, {"etcd", ok}} }, code: http.StatusServiceUnavailable,
			want: []Result{{Name: "nats", Error: "NATS disconnected"}, {Name: "etcd", OK: true}}},
		{name: "one hangs past its timeout", checks: func(hang probeFunc) []Check { return []Check{{"nats", ok}, {"etcd", hang}} }, code: http.StatusServiceUnavailable,
			want: []Result{{Name: "nats", OK: true}, {Name: "etcd", Error: "etcd: no answer within 2s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hang, release := hanging()
				defer release()
				var checks []Check
				if tt.checks != nil {
					checks = tt.checks(hang)
				}
				h := Handler(0, checks...)
				code, rep := get(t, h, "/readyz")
				if code != tt.code {
					t.Errorf("/readyz: %d, want %d", code, tt.code)
				}
				wantStatus := map[int]string{http.StatusOK: "ok", http.StatusServiceUnavailable: "unavailable"}[tt.code]
				if rep.Status != wantStatus {
					t.Errorf("/readyz status %q, want %q", rep.Status, wantStatus)
				}
				if got := rep.Checks; !slices.Equal(nonNil(got), tt.want) {
					t.Errorf("/readyz checks %+v, want %+v", got, tt.want)
				}
				if code, rep := get(t, h, "/livez"); code != http.StatusOK || rep.Status != "ok" || len(rep.Checks) != 0 {
					t.Errorf("/livez: %d %+v, want 200 ok with no checks", code, rep)
				}
			})
		})
	}
}

// TestProbesRunAtOnce checks that two slow probes delay the answer by one
// timeout, not two.
func TestProbesRunAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang, release := hanging()
		defer release()
		start := time.Now()
		rep := Ready(t.Context(), time.Second, Check{"a", hang}, Check{"b", hang})
		if took := time.Since(start); took != time.Second {
			t.Errorf("two hanging probes took %s, want one timeout (1s)", took)
		}
		if rep.Status != "unavailable" {
			t.Errorf("status %q, want unavailable", rep.Status)
		}
	})
}

type probeFunc = func(context.Context) error

// hanging returns a probe that ignores its context, as one stuck in a
// client library might, until release is called (so a synctest bubble can
// end). Call it inside the bubble.
func hanging() (hang probeFunc, release func()) {
	released := make(chan struct{})
	return func(context.Context) error { <-released; return nil }, func() { close(released) }
}

func get(t *testing.T, h http.Handler, path string) (int, Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", path, ct)
	}
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("%s: body %q: %v", path, rec.Body, err)
	}
	return rec.Code, rep
}

func nonNil(r []Result) []Result {
	if r == nil {
		return []Result{}
	}
	return r
}
