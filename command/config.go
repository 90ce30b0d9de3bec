package command

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"asymptote.dev/asymptote/plugins/methods/command"
	"asymptote.dev/asymptote/sweep"
)

// applyEnv fills every flag the command line did not set from its
// environment variable, ASYMPTOTE_ followed by the flag name in upper case
// with dashes as underscores (-nats-url reads ASYMPTOTE_NATS_URL). The
// order of precedence is flags, then the environment, then defaults.
func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usagef("environment variable %s=%q: %v", name, v, e)
		}
	})
	return err
}

func envName(flagName string) string {
	return "ASYMPTOTE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseAllow parses -allow's NAME=SHA256 pairs into an allowlist.
func parseAllow(items []string) (map[string]string, error) {
	const want = "want NAME=SHA256 (64 hex digits), for example -allow mymethod=$(sha256sum mymethod | cut -d' ' -f1)"
	out := map[string]string{}
	for _, it := range items {
		name, sum, ok := strings.Cut(it, "=")
		if !ok || name == "" {
			return nil, usagef("-allow %q: %s", it, want)
		}
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return nil, usagef("-allow %q: the hash is not 64 hex digits; %s", it, want)
		}
		sum = strings.ToLower(sum)
		if prev, dup := out[name]; dup && prev != sum {
			return nil, usagef("-allow: method %q is given twice with different hashes", name)
		}
		out[name] = sum
	}
	return out, nil
}

// parsePrograms parses -allow-program's PATH or PATH=SHA256 entries into
// the command method's allowlist: real absolute path to hex SHA-256. A
// path without a hash is pinned as the file is now; a bare name (python3)
// is looked up on PATH.
func parsePrograms(items []string) (map[string]string, error) {
	const want = "want the PATH of a program or interpreter (pinned as it is now) or PATH=SHA256, for example -allow-program /usr/bin/python3 -allow-program ./train.py"
	out := map[string]string{}
	for _, it := range items {
		path, sum, hasSum := strings.Cut(it, "=")
		if path == "" {
			return nil, usagef("-allow-program %q: %s", it, want)
		}
		cwd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		real, err := command.Locate(path, cwd, fmt.Sprintf("-allow-program %q", it))
		if err != nil {
			return nil, usagef("%v; %s", err, want)
		}
		if hasSum {
			if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
				return nil, usagef("-allow-program %q: the hash is not 64 hex digits; %s", it, want)
			}
			sum = strings.ToLower(sum)
		} else if sum, err = command.Hash(real); err != nil {
			return nil, usagef("-allow-program %q: %v", it, err)
		}
		if prev, dup := out[real]; dup && prev != sum {
			return nil, usagef("-allow-program: %s is given twice with different hashes", real)
		}
		out[real] = sum
	}
	return out, nil
}

// parseBytes parses sizes such as 512MiB, 2GiB, 1.5GB or a plain number of
// bytes. The whole string must parse: "16 gigs" is an error, not 16 bytes.
func parseBytes(s string) (int64, error) {
	v, err := sweep.ParseSize(strings.TrimSpace(s), sweep.PlainBytes)
	if err != nil || v < 0 || v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 512MiB or 2GiB", s)
	}
	return int64(v), nil
}
