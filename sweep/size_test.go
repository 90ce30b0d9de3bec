package sweep

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		plain float64
		want  float64
		// wantUnit, for an error, is the unit the error names; wantRange
		// is whether it says the number is out of range.
		wantErr   bool
		wantUnit  string
		wantRange bool
	}{
		{in: "512MiB", plain: PlainBytes, want: 512 << 20},
		{in: "512MiB", plain: UnitRequired, want: 512 << 20},
		{in: "2GiB", plain: PlainMiB, want: 2 << 30},
		{in: "1.5GB", plain: PlainBytes, want: 1.5e9},
		{in: "100 KiB", plain: PlainBytes, want: 100 << 10},
		{in: "1e3GiB", plain: PlainBytes, want: 1e3 * (1 << 30)},
		{in: "1_000B", plain: PlainBytes, want: 1000},
		{in: "4096B", plain: UnitRequired, want: 4096},
		{in: "1TiB", plain: PlainBytes, want: 1 << 40},
		{in: "2TB", plain: PlainBytes, want: 2e12},
		{in: "512", plain: PlainBytes, want: 512},
		{in: "512", plain: PlainMiB, want: 512 << 20},
		{in: "0.5", plain: PlainMiB, want: 1 << 19},
		{in: "-1", plain: PlainBytes, want: -1}, // callers bound sizes
		{in: "512", plain: UnitRequired, wantErr: true},
		{in: "2GBi", plain: PlainBytes, wantErr: true, wantUnit: "GBi"},
		{in: "16 gigs", plain: PlainBytes, wantErr: true, wantUnit: "gigs"},
		{in: "2gib", plain: PlainBytes, wantErr: true, wantUnit: "gib"},
		{in: "GiB", plain: PlainBytes, wantErr: true, wantUnit: "GiB"},
		{in: "", plain: PlainBytes, wantErr: true},
		{in: "0x10MiB", plain: PlainBytes, wantErr: true, wantUnit: "MiB"},
		{in: "InfMiB", plain: PlainBytes, wantErr: true, wantUnit: "InfMiB"},
		{in: "1MiB ", plain: PlainBytes, wantErr: true},
		{in: " 1MiB", plain: PlainBytes, want: 1 << 20},
		{in: "1e999GiB", plain: PlainBytes, wantErr: true, wantUnit: "GiB", wantRange: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in, tt.plain)
		if !tt.wantErr {
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q, %g) = %g, %v; want %g", tt.in, tt.plain, got, err, tt.want)
			}
			continue
		}
		var se *SizeError
		if !errors.As(err, &se) {
			t.Errorf("ParseSize(%q, %g) = %g, %v; want a *SizeError", tt.in, tt.plain, got, err)
			continue
		}
		if se.Unit != tt.wantUnit || (se.Range != "") != tt.wantRange || se.Input != tt.in {
			t.Errorf("ParseSize(%q, %g) error %+v; want unit %q, range %t", tt.in, tt.plain, se, tt.wantUnit, tt.wantRange)
		}
		if se.Error() == "" {
			t.Errorf("ParseSize(%q, %g): empty error message", tt.in, tt.plain)
		}
	}
}
