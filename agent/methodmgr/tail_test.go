package methodmgr

import (
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	long := strings.Repeat("x", tailSize-3) + "end"
	tests := []struct {
		name   string
		before string
		writes []string
		want   string
	}{
		{name: "empty", want: ""},
		{name: "short", writes: []string{"a", "bc"}, want: "abc"},
		{name: "since mark only", before: "old", writes: []string{"new"}, want: "new"},
		{name: "wraps", before: "old", writes: []string{"0123456789", long}, want: long},
		{name: "one huge write", writes: []string{"head" + long}, want: long},
		{name: "many writes wrap", writes: []string{long, "abc", "def"}, want: (long + "abcdef")[6:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tl tail
			tl.Write([]byte(tt.before))
			mark, _ := tl.begin(0)
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(w))
				}
			}
			if got := tl.since(mark); got != tt.want {
				t.Errorf("since = %q (len %d), want %q (len %d)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
}

func TestTailFlood(t *testing.T) {
	var tl tail
	tl.Write(make([]byte, 100)) // before the attempt: not counted
	_, flood := tl.begin(10)
	tl.Write(make([]byte, 10))
	select {
	case <-flood:
		t.Fatal("flood closed at the limit")
	default:
	}
	tl.Write([]byte{1})
	select {
	case <-flood:
	default:
		t.Fatal("flood not closed past the limit")
	}
	tl.Write([]byte{1}) // closing twice would panic
}
