package store_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/store"
)

type doc struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Blob  string  `json:"blob,omitempty"`
}

func TestCheckNamesEveryPutThatCanNeverBeWritten(t *testing.T) {
	st := store.New(nil).WithMaxRequestBytes(256 << 10)
	limit := st.MaxRecordBytes()
	puts := []store.Put{
		{Key: "/a", Value: doc{Name: "fine", Value: 1}},
		{Key: "/nan", Value: doc{Name: "nan", Value: math.NaN()}},
		{Key: "/inf", Value: doc{Name: "inf", Value: math.Inf(-1)}},
		{Key: "/big", Value: doc{Blob: strings.Repeat("x", limit)}},
		{Key: "/edge", Value: doc{Blob: strings.Repeat("x", limit-64)}},
		{Key: "/gone", Delete: true},
	}
	rej := st.Check(puts)
	if rej == nil {
		t.Fatal("Check accepted a NaN, an infinity and an oversized record")
	}
	want := map[string]string{"/nan": "cannot be encoded", "/inf": "cannot be encoded", "/big": "over the limit of"}
	if len(rej.Puts) != len(want) {
		t.Fatalf("rejected %+v, want exactly %v", rej.Puts, want)
	}
	for _, r := range rej.Puts {
		if w, ok := want[r.Key]; !ok || !strings.Contains(r.Reason, w) {
			t.Errorf("rejected %s: %q, want a reason with %q", r.Key, r.Reason, w)
		}
		if puts[r.Index].Key != r.Key {
			t.Errorf("index %d names %s, want %s", r.Index, puts[r.Index].Key, r.Key)
		}
	}
	if !errors.Is(rej, store.ErrRejected) {
		t.Error("a RejectedError does not match ErrRejected")
	}
	if st.Check(puts[:1]) != nil {
		t.Error("Check rejected a plain record")
	}
}

// TestCommitWritesTheGoodAndNamesTheBad: one bad record in a batch never
// blocks the others (the leader commits every study's writes together).
func TestCommitWritesTheGoodAndNamesTheBad(t *testing.T) {
	cl := clustertest.New(t)
	st := store.New(cl.Etcd)
	var puts []store.Put
	for i := range 250 { // three transactions by count
		puts = append(puts, store.Put{Key: "/t/ok/" + string(rune('a'+i%26)) + strings.Repeat("k", i/26), Value: doc{Name: "ok", Value: float64(i)}})
	}
	bad := len(puts)
	puts = append(puts, store.Put{Key: "/t/bad", Value: doc{Value: math.NaN()}})
	revs, err := st.Commit(t.Context(), puts)
	var rej *store.RejectedError
	if !errors.As(err, &rej) || len(rej.Puts) != 1 || rej.Puts[0].Index != bad {
		t.Fatalf("Commit = %v, want the NaN record rejected alone", err)
	}
	for i, r := range revs[:bad] {
		if r == 0 {
			t.Fatalf("put %d did not land", i)
		}
	}
	if revs[bad] != 0 {
		t.Error("the rejected put has a revision")
	}
	n, err := cl.Etcd.Get(t.Context(), "/t/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if n.Count != int64(bad) {
		t.Errorf("%d keys written, want %d", n.Count, bad)
	}
}

// TestCommitFillsTransactionsByBytes: records that fit one by one but not
// together are spread over transactions instead of failing as one request
// over etcd's limit (the 1 MiB parameter's failure).
func TestCommitFillsTransactionsByBytes(t *testing.T) {
	cl := clustertest.New(t)
	st := store.New(cl.Etcd)
	blob := strings.Repeat("x", 700<<10) // two of these pass etcd's 1.5 MiB
	puts := []store.Put{
		{Key: "/b/1", Value: doc{Blob: blob}},
		{Key: "/b/2", Value: doc{Blob: blob}},
		{Key: "/b/3", Value: doc{Blob: blob}},
	}
	revs, err := st.Commit(t.Context(), puts)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if revs[0] == revs[1] && revs[1] == revs[2] {
		t.Error("three 700 KiB records went in one transaction")
	}
}

// TestCommitSplitsWhenTheServerLimitIsLower: a store told a larger limit
// than the server's finds out from the server, halves its transactions,
// and rejects only the record that is too large on its own.
func TestCommitSplitsWhenTheServerLimitIsLower(t *testing.T) {
	cl := clustertest.New(t)
	st := store.New(cl.Etcd).WithMaxRequestBytes(16 << 20)
	puts := []store.Put{
		{Key: "/s/1", Value: doc{Blob: strings.Repeat("x", 600<<10)}},
		{Key: "/s/2", Value: doc{Blob: strings.Repeat("x", 600<<10)}},
		{Key: "/s/3", Value: doc{Blob: strings.Repeat("x", 600<<10)}},
		{Key: "/s/huge", Value: doc{Blob: strings.Repeat("x", 3<<20)}},
	}
	revs, err := st.Commit(t.Context(), puts)
	var rej *store.RejectedError
	if !errors.As(err, &rej) || len(rej.Puts) != 1 || rej.Puts[0].Key != "/s/huge" {
		t.Fatalf("Commit = %v, want only /s/huge rejected", err)
	}
	if !strings.Contains(rej.Puts[0].Reason, "--max-request-bytes") {
		t.Errorf("reason %q does not say which limit to raise", rej.Puts[0].Reason)
	}
	for i := range 3 {
		if revs[i] == 0 {
			t.Errorf("put %d did not land", i)
		}
	}
}

// TestListSkipsUndecodableRecords: one corrupt record no longer hides the
// rest, and is named.
func TestListSkipsUndecodableRecords(t *testing.T) {
	cl := clustertest.New(t)
	for k, v := range map[string]string{
		store.NodeKey("a"): `{"id":"a","state":"alive"}`,
		store.NodeKey("b"): `{"id":`,
		store.NodeKey("c"): `{"id":"c","state":"alive"}`,
	} {
		if _, err := cl.Etcd.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	err := store.New(cl.Etcd).Nodes(t.Context(), func(v store.Versioned[api.Node]) error {
		seen = append(seen, v.Value.ID)
		return nil
	})
	var bad *store.Undecodable
	if !errors.As(err, &bad) || len(bad.Keys) != 1 || bad.Keys[store.NodeKey("b")] == nil {
		t.Fatalf("Nodes = %v, want node b named as undecodable", err)
	}
	if strings.Join(seen, ",") != "a,c" {
		t.Errorf("visited %v, want a and c", seen)
	}
}

func TestStudyOf(t *testing.T) {
	for key, want := range map[string]string{
		store.StudyKey("s1"):         "s1",
		store.TrialKey("s2", "abc"):  "s2",
		store.QuarantineKey("s3"):    "s3",
		store.NodeKey("n"):           "",
		store.Prefix + "something/x": "",
	} {
		if got := store.StudyOf(key); got != want {
			t.Errorf("StudyOf(%q) = %q, want %q", key, got, want)
		}
	}
}
