package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"time"
)

// VerbAllow reads or changes the cluster's allowlist: the external methods
// and the command method's programs that every agent may run. Only an
// operator identity may call it on a secure bus.
const VerbAllow = "allow"

// The kinds of allowlist entry.
const (
	// AllowMethod is an external method: an executable of that name in
	// each agent's plugin directory.
	AllowMethod = "method"
	// AllowProgram is a program or interpreter the command method may
	// run, by absolute path.
	AllowProgram = "program"
)

// AllowEntry allows one executable, pinned by its SHA-256.
type AllowEntry struct {
	SHA256 string    `json:"sha256"`
	Time   time.Time `json:"time"`
	// By is the identity that set it, as the request's subject names it
	// ("anonymous" on an open bus; empty in records from before).
	By string `json:"by,omitempty"`
}

// Allowlist is the cluster's allowlist, one record in etcd that only the
// leader writes. Agents add it to what their own -allow and
// -allow-program flags allow, and pick up each change from their next
// heartbeat's reply without a restart.
type Allowlist struct {
	// Methods maps an external method's name to its entry.
	Methods map[string]AllowEntry `json:"methods,omitempty"`
	// Programs maps a program's absolute path to its entry.
	Programs map[string]AllowEntry `json:"programs,omitempty"`
}

// Version identifies the allowlist's contents: agents report the version
// they hold, and the leader sends the list only when it differs. The
// empty list's version is "", which is what an agent that holds none
// reports.
func (l Allowlist) Version() string {
	if len(l.Methods) == 0 && len(l.Programs) == 0 {
		return ""
	}
	// encoding/json writes map keys sorted: the encoding is canonical.
	b, _ := json.Marshal(l.Hashes())
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// AllowHashes is an allowlist as agents need it: names to SHA-256s.
type AllowHashes struct {
	Methods  map[string]string `json:"methods,omitempty"`
	Programs map[string]string `json:"programs,omitempty"`
}

// Hashes returns what agents need of the list.
func (l Allowlist) Hashes() AllowHashes {
	var h AllowHashes
	if len(l.Methods) > 0 {
		h.Methods = make(map[string]string, len(l.Methods))
		for n, e := range l.Methods {
			h.Methods[n] = e.SHA256
		}
	}
	if len(l.Programs) > 0 {
		h.Programs = make(map[string]string, len(l.Programs))
		for p, e := range l.Programs {
			h.Programs[p] = e.SHA256
		}
	}
	return h
}

// AllowRequest allows an executable, revokes one, or (with no Name) only
// lists the allowlist.
type AllowRequest struct {
	// Kind is AllowMethod or AllowProgram.
	Kind string `json:"kind,omitempty"`
	// Name is the method's name or the program's absolute path.
	Name string `json:"name,omitempty"`
	// SHA256 is the executable's hash in hex; empty with Revoke.
	SHA256 string `json:"sha256,omitempty"`
	Revoke bool   `json:"revoke,omitempty"`
}

// AllowReply is the allowlist after the request.
type AllowReply struct {
	Allowlist Allowlist `json:"allowlist"`
	// Note says what changed.
	Note string `json:"note,omitempty"`
}

// Check validates the request, naming the field and the fix. It
// lower-cases the hash.
func (r *AllowRequest) Check() error {
	if r.Name == "" {
		if r.Kind != "" || r.SHA256 != "" || r.Revoke {
			return fmt.Errorf("allow: name: empty; give the method's name or the program's path")
		}
		return nil // a listing
	}
	switch r.Kind {
	case AllowMethod:
		if err := CheckMethodName(r.Name); err != nil {
			return fmt.Errorf("allow: name: %w", err)
		}
	case AllowProgram:
		if !filepath.IsAbs(r.Name) || filepath.Clean(r.Name) != r.Name {
			return fmt.Errorf("allow: name: program %q is not a clean absolute path; give it as the agents see it, such as /usr/bin/python3", r.Name)
		}
	default:
		return fmt.Errorf("allow: kind: %q, want %q or %q", r.Kind, AllowMethod, AllowProgram)
	}
	if r.Revoke {
		if r.SHA256 != "" {
			return fmt.Errorf("allow: sha256: a revocation takes no hash")
		}
		return nil
	}
	r.SHA256 = strings.ToLower(strings.TrimSpace(r.SHA256))
	if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("allow: sha256: %q is not a SHA-256 in hex (64 characters); compute it with 'sha256sum %s'", r.SHA256, r.Name)
	}
	return nil
}

// CheckMethodName reports whether name can name an external method: a file
// name in the plugin directory, with no path.
func CheckMethodName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a method name", name)
	case name != filepath.Base(name) || strings.ContainsAny(name, `/\`):
		return fmt.Errorf("method %q has a path in it; give the file name in the agents' plugin directory", name)
	case len(name) > 128:
		return fmt.Errorf("method name of %d characters is over 128", len(name))
	}
	return nil
}

// MaxAllowEntries bounds the cluster's allowlist, methods and programs
// together.
const MaxAllowEntries = 1024

// Apply returns the list with the request carried out, what it did, and
// whether the list changed. The request must have passed Check.
func (l Allowlist) Apply(r AllowRequest, by string, now time.Time) (Allowlist, string, bool) {
	out := Allowlist{Methods: maps.Clone(l.Methods), Programs: maps.Clone(l.Programs)}
	m := &out.Methods
	if r.Kind == AllowProgram {
		m = &out.Programs
	}
	old, had := (*m)[r.Name]
	switch {
	case r.Revoke && !had:
		return l, fmt.Sprintf("%s %s was not allowed by the cluster; nothing changed", r.Kind, r.Name), false
	case r.Revoke:
		delete(*m, r.Name)
		return out, fmt.Sprintf("revoked %s %s (sha256 %s)", r.Kind, r.Name, old.SHA256), true
	case had && old.SHA256 == r.SHA256:
		return l, fmt.Sprintf("%s %s is already allowed with sha256 %s; nothing changed", r.Kind, r.Name, r.SHA256), false
	}
	if *m == nil {
		*m = map[string]AllowEntry{}
	}
	(*m)[r.Name] = AllowEntry{SHA256: r.SHA256, Time: now, By: by}
	if had {
		return out, fmt.Sprintf("allowed %s %s with sha256 %s instead of %s", r.Kind, r.Name, r.SHA256, old.SHA256), true
	}
	return out, fmt.Sprintf("allowed %s %s with sha256 %s", r.Kind, r.Name, r.SHA256), true
}
