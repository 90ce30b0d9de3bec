package charlm

import (
	"fmt"
	"testing"

	"asymptote.dev/asymptote/plugins/methods/internal/methodtest"
	"asymptote.dev/asymptote/plugins/methods/internal/nn"
	"asymptote.dev/asymptote/plugins/sdk"
)

// BenchmarkTrain measures training throughput (characters per second, one
// member, evaluation excluded) at several widths and thread budgets.
func BenchmarkTrain(b *testing.B) {
	methodtest.RequireKJV(b)
	for _, bc := range []struct{ width, depth, threads int }{
		{64, 1, 1}, {256, 1, 1}, {256, 1, 2}, {1024, 1, 1}, {1024, 1, 2}, {256, 2, 1},
	} {
		b.Run(fmt.Sprintf("width=%d/depth=%d/threads=%d", bc.width, bc.depth, bc.threads), func(b *testing.B) {
			req := &sdk.TrialRequest{Params: map[string]any{
				"width": float64(bc.width), "depth": float64(bc.depth), "context": 8.0, "embed": 16.0,
			}}
			c, err := parse(req, mustText(b))
			if err != nil {
				b.Fatal(err)
			}
			tr := newTrainer(c, mustText(b), 1, nn.Pool{Threads: bc.threads})
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				tr.step(i, 1<<30, c.batch)
			}
			b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(tr.members[0].numParams()), "params")
		})
	}
}
