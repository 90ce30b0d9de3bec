package httpapi

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"asymptote.dev/asymptote/internal/store"
)

// A trial's record in etcd is the JSON encoding of api.Trial that the
// store wrote, which is what format=json returns for it. The full records
// are therefore served as etcd holds them, without decoding 100,000 of
// them into api.Trial and encoding them again: only each record's index
// is read (to put them in index order) and each is checked to be valid
// JSON, so that a damaged record fails the request as it did when it was
// decoded.

// rawTrial is one trial's record as etcd holds it.
type rawTrial struct {
	index int
	value []byte
}

// loadRawTrials reads study's trial records as of one revision, in index
// order (key order among equal indexes).
func (s *Server) loadRawTrials(ctx context.Context, study string) ([]rawTrial, error) {
	var out []rawTrial
	_, err := readPages(ctx, s.cfg.Etcd, store.TrialPrefix+study+"/", func(count int64, kvs []*mvccpb.KeyValue) error {
		if out == nil {
			out = make([]rawTrial, 0, count)
		}
		page := make([]rawTrial, len(kvs))
		errs := make([]error, len(kvs))
		parallel(len(kvs), func(_, i int) {
			page[i].value = kvs[i].Value
			page[i].index, errs[i] = recordIndex(kvs[i].Value)
		})
		var bad error
		for i, kv := range kvs {
			if errs[i] != nil {
				bad = errors.Join(bad, fmt.Errorf("%s: %w", kv.Key, errs[i]))
			}
		}
		if bad != nil {
			return fmt.Errorf("trials: undecodable records: %w", bad)
		}
		out = append(out, page...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trials of %s: %w", study, err)
	}
	slices.SortStableFunc(out, func(a, b rawTrial) int { return cmp.Compare(a.index, b.index) })
	if out == nil {
		out = []rawTrial{}
	}
	return out, nil
}

// errNotRecord is a value that is JSON but not a trial's record.
var errNotRecord = errors.New("not a trial record (want a JSON object with a whole-number index)")

// recordIndex checks that b is valid JSON and returns the trial's index in
// it. The store writes a record's fields in order, id, study, index
// first, so the index is read from there; any other layout is decoded.
func recordIndex(b []byte) (int, error) {
	if !json.Valid(b) {
		var t struct{}
		return 0, json.Unmarshal(b, &t) // says where it is broken
	}
	if n, ok := leadingIndex(b); ok {
		return n, nil
	}
	var t struct {
		Index *int `json:"index"`
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return 0, err
	}
	if t.Index == nil {
		return 0, errNotRecord
	}
	return *t.Index, nil
}

// leadingIndex reads the index of a record laid out as the store writes
// one: {"id":"…","study":"…","index":N,…}. b is valid JSON.
func leadingIndex(b []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	if rest, ok = skipString(rest); !ok {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"study":`)); !ok {
		return 0, false
	}
	if rest, ok = skipString(rest); !ok {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"index":`)); !ok {
		return 0, false
	}
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:end]))
	return n, err == nil
}

// skipString returns what follows the JSON string b starts with.
func skipString(b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, false
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return b[i+1:], true
		}
	}
	return nil, false
}

// writeRawTrials writes the page of trials from offset, of total, as the
// document format=json is: {"offset":…,"total":…,"trials":[…]} and a
// newline, the records spliced in as they are.
func writeRawTrials(w io.Writer, trials []rawTrial, total, offset int) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintf(bw, `{"offset":%d,"total":%d,"trials":[`, offset, total)
	for i, t := range trials {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(t.value)
	}
	_, _ = bw.WriteString("]}\n")
	return bw.Flush()
}
