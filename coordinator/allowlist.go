package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
)

// The cluster's allowlist: the external methods and the command method's
// programs that every agent may run besides what its own flags allow. An
// operator changes it (api.VerbAllow); the leader keeps it in one etcd
// record and sends it to each agent whose heartbeat reports another
// version, so agents pick up a change within a heartbeat, without a
// restart.

// allowlist is the cluster's allowlist as the leader holds it.
type allowlist struct {
	rec     api.Allowlist
	rev     int64
	version string
	// dirty: the turn changed it, and the commit writes it.
	dirty bool
}

// set replaces the list and notes its version.
func (a *allowlist) set(rec api.Allowlist) {
	a.rec = rec
	a.version = rec.Version()
}

// forAgent is the list as an agent needs it.
func (a *allowlist) forAgent() *bus.Allowlist {
	return &bus.Allowlist{Version: a.version, AllowHashes: a.rec.Hashes()}
}

// allow carries out an operator's allow request: it lists the allowlist,
// or changes it. A change is written by the turn's commit before the
// reply goes out.
func (l *leaderState) allow(who bus.Caller, req api.AllowRequest, now time.Time) (*api.AllowReply, error) {
	if err := operatorOnly(who, api.VerbAllow); err != nil {
		return nil, err
	}
	if err := req.Check(); err != nil {
		return nil, err
	}
	if req.Name == "" {
		return &api.AllowReply{Allowlist: l.allowed.rec}, nil
	}
	next, note, changed := l.allowed.rec.Apply(req, who.Who(), now)
	if !changed {
		return &api.AllowReply{Allowlist: l.allowed.rec, Note: note}, nil
	}
	if n := len(next.Methods) + len(next.Programs); n > api.MaxAllowEntries {
		return nil, fmt.Errorf("allow: the cluster allowlist would hold %d entries, over the limit of %d; revoke some first ('asymptote allow -revoke')", n, api.MaxAllowEntries)
	}
	if rej := l.check([]store.Put{{Key: store.AllowlistKey, Value: &next}}); rej != nil {
		return nil, fmt.Errorf("allow: the allowlist cannot be stored: %s", rej.Puts[0].Reason)
	}
	l.allowed.set(next)
	l.allowed.dirty = true
	l.log.Info("allowlist changed", "change", note, "version", l.allowed.version)
	return &api.AllowReply{Allowlist: next, Note: note}, nil
}

// loadAllowlist reads the cluster's allowlist. A record that does not
// decode is logged and replaced by the next change: agents then hold
// only what their flags allow.
func (l *leader) loadAllowlist(ctx context.Context) error {
	v, err := l.store.Allowlist(ctx)
	var bad *store.Undecodable
	if errors.As(err, &bad) {
		l.log.Error("the stored allowlist does not decode; agents run only what their own flags allow until an operator sets it again", "error", err)
		revs, err := l.store.ModRevisions(ctx, []string{store.AllowlistKey})
		if err != nil {
			return fmt.Errorf("allowlist: %w", err)
		}
		l.allowed = allowlist{rev: revs[0]}
		return nil
	}
	if err != nil {
		return fmt.Errorf("allowlist: %w", err)
	}
	l.allowed = allowlist{rev: v.Rev}
	l.allowed.set(v.Value)
	return nil
}
