package resource

import "testing"

func TestFits(t *testing.T) {
	t.Parallel()
	const gib = 1 << 30
	twoGPUs := []GPU{{Index: 0}, {Index: 1}}
	host := Resources{CPU: 4, Memory: 8 * gib, GPUs: twoGPUs}
	tests := []struct {
		name             string
		needs, cap, used Resources
		scale            float64
		want             bool
	}{
		{name: "idle host", needs: Resources{CPU: 1, Memory: gib}, cap: host, scale: 1, want: true},
		{name: "exactly full", needs: Resources{CPU: 1, Memory: gib}, cap: host, used: Resources{CPU: 3, Memory: 7 * gib}, scale: 1, want: true},
		{name: "cpu taken", needs: Resources{CPU: 1, Memory: gib}, cap: host, used: Resources{CPU: 3.5}, scale: 1, want: false},
		{name: "memory taken", needs: Resources{CPU: 1, Memory: gib}, cap: host, used: Resources{Memory: 7*gib + 1}, scale: 1, want: false},
		{name: "fractions sum with rounding", needs: Resources{CPU: 0.1}, cap: Resources{CPU: 1}, used: Resources{CPU: 0.1 + 0.1 + 0.1 + 0.1 + 0.1 + 0.1 + 0.1 + 0.1 + 0.1}, scale: 1, want: true},
		{name: "more cpu than the host", needs: Resources{CPU: 5}, cap: host, scale: 1, want: false},
		{name: "more memory than the host", needs: Resources{Memory: 9 * gib}, cap: host, scale: 1, want: false},
		{name: "queue takes what is over", needs: Resources{CPU: 2, Memory: gib}, cap: host, used: Resources{CPU: 4, Memory: 4 * gib}, scale: 1.5, want: true},
		{name: "queue full", needs: Resources{CPU: 2.5, Memory: gib}, cap: host, used: Resources{CPU: 4, Memory: 4 * gib}, scale: 1.5, want: false},
		{name: "queue memory full", needs: Resources{CPU: 1, Memory: 5 * gib}, cap: host, used: Resources{Memory: 8 * gib}, scale: 1.5, want: false},
		{name: "queue never takes a trial bigger than the host", needs: Resources{CPU: 5}, cap: host, scale: 2, want: false},
		{name: "gpus free", needs: Resources{CPU: 1, GPUCount: 2}, cap: host, scale: 1, want: true},
		{name: "one gpu taken", needs: Resources{CPU: 1, GPUCount: 2}, cap: host, used: Resources{GPUCount: 1}, scale: 1, want: false},
		{name: "gpus are not queued", needs: Resources{CPU: 1, GPUCount: 1}, cap: host, used: Resources{GPUCount: 2}, scale: 2, want: false},
		{name: "no gpus on the host", needs: Resources{CPU: 1, GPUCount: 1}, cap: Resources{CPU: 4, Memory: gib}, scale: 1, want: false},
		{name: "nothing needed of an empty host", cap: Resources{}, scale: 1, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Fits(tt.needs, tt.cap, tt.used, tt.scale); got != tt.want {
				t.Errorf("Fits(%+v, %+v, %+v, %g) = %t, want %t", tt.needs, tt.cap, tt.used, tt.scale, got, tt.want)
			}
		})
	}
}
