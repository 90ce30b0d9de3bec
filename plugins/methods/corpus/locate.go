// Package corpus finds and loads the real data sets the built-in methods
// train on: the King James Bible as plain text (from Debian's bible-kjv,
// written out by scripts/install-data.sh) and Fashion-MNIST's IDX files
// (from Debian's dataset-fashion-mnist). Data is never committed; when it
// is missing, the error says how to install it.
package corpus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DataDirEnv names the environment variable holding the first directory
// searched for data files.
const DataDirEnv = "ASYMPTOTE_DATA_DIR"

// InstallHint tells a user how to install the data; every missing-data
// error carries it.
const InstallHint = "run scripts/install-data.sh from the asymptote checkout (as root, or with sudo: it installs Debian's bible-kjv and dataset-fashion-mnist and writes kjv.txt)"

// ErrMissing matches errors for data that is not installed.
var ErrMissing = errors.New("data not installed")

// DefaultDirs returns the directories searched for data files, in order:
// $ASYMPTOTE_DATA_DIR when set, /var/lib/asymptote/data, and
// $XDG_CACHE_HOME/asymptote/data (or ~/.cache/asymptote/data).
func DefaultDirs() []string {
	var dirs []string
	if d := os.Getenv(DataDirEnv); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/var/lib/asymptote/data")
	if d, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "asymptote", "data"))
	}
	return dirs
}

// Find returns the path of the first dirs[i]/name that exists (dirs nil
// means DefaultDirs), or an error matching ErrMissing that lists where it
// looked and how to install the data.
func Find(dirs []string, name string) (string, error) {
	if dirs == nil {
		dirs = DefaultDirs()
	}
	var looked []string
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		looked = append(looked, p)
	}
	return "", fmt.Errorf("%w: %s not found (looked at %s); %s", ErrMissing, name, strings.Join(looked, ", "), InstallHint)
}
