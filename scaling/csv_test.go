package scaling

import (
	"errors"
	"strings"
	"testing"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestReadCSV(t *testing.T) {
	tests := []struct {
		name, in string
		law      Law
		want     []string // substrings of the error; nil: no error
		n        int
	}{
		{"ok", "params,tokens,loss\n1e8,1e9,3.1\n2e8,4e9,2.9\n", Chinchilla, nil, 2},
		{"missing column", "params,loss\n1e8,3\n", Chinchilla, []string{`column "tokens": missing`}, 0},
		{"tokens from compute", "params,compute,loss\n1e8,6e17,3.1\n2e8,4.8e18,2.9\n", Chinchilla, nil, 2},
		{"zero loss", "params,tokens,loss\n1e8,1e9,0\n", Chinchilla, []string{`line 2, column "loss": must be positive`}, 0},
		{"negative size", "params,loss\n-5,3\n", Power, []string{`line 2, column "params": must be positive`}, 0},
		{"NaN", "params,loss\n1,NaN\n", Power, []string{`line 2, column "loss": is NaN`}, 0},
		{"garbage", "params,loss\n1,x\n2,3\n3,y\n", Power, []string{`line 2, column "loss"`, `line 4, column "loss"`}, 0},
		{"short row", "params,loss\n1\n", Power, []string{"line 2"}, 0},
		{"empty", "", Power, []string{"empty CSV"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs, err := ReadCSV(strings.NewReader(tc.in), tc.law, DefaultColumns)
			if tc.want == nil {
				if err != nil || len(obs) != tc.n {
					t.Fatalf("got %d rows, err %v", len(obs), err)
				}
				for _, o := range obs {
					if tc.law == Chinchilla && o.D/o.N != 10 && o.D/o.N != 20 {
						t.Errorf("tokens %g for params %g, want 10 or 20 per parameter", o.D, o.N)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
