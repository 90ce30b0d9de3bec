package sweep

import "testing"

func TestSuggest(t *testing.T) {
	t.Parallel()
	keys := []string{"name", "method", "space", "seeds", "replicates", "retries"}
	tests := []struct{ got, want string }{
		{"spcae", ` (did you mean "space"?)`}, // a swap is one edit
		{"Space", ` (did you mean "space"?)`}, // case is ignored
		{"methd", ` (did you mean "method"?)`},
		{"seed", ` (did you mean "seeds"?)`},
		{"retires", ` (did you mean "retries"?)`},
		{"x", ""}, // too short to guess
		{"budget", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.got, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.got, got, tt.want)
		}
	}
	units := []string{"B", "GB", "GiB", "KB", "KiB", "MB", "MiB", "TB", "TiB"}
	if got := suggest("GBi", units); got != ` (did you mean "GiB"?)` {
		t.Errorf("suggest(GBi) = %q, want GiB: same length wins a tie", got)
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "ab", 2},
		{"space", "space", 0},
		{"spcae", "space", 1},
		{"logg", "log", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // optimal string alignment, not full Damerau
	}
	for _, tt := range tests {
		if got := EditDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
