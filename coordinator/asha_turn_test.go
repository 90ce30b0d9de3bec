package coordinator

import (
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/bus"
)

// TestMetricsFromAnotherNode: a study's streamed metrics count only when
// their subject names the node the attempt runs on (or no node, as an
// agent from before senders were named sends): another node's reports
// pass no rung and stop nothing.
func TestMetricsFromAnotherNode(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("n1", 1, 1<<30, 0, nil, now)
	l.heartbeat("n2", 1, 1<<30, 0, nil, now)
	s := l.addStudy(t, studySpec("s", 2, "{cpu: 1, memory: 16MiB}")+
		"objective: {metric: val_loss, direction: minimize}\nsearch:\n  asha: {fidelity: tokens, rungs: [10, 20], eta: 3}\n", 0, now)
	l.noteEarlyStopping(s)
	l.schedule(now)
	byNode := map[string]*trial{}
	for _, tr := range s.trials {
		if a := tr.rec.Current(); a != nil {
			byNode[a.Node] = tr
		}
	}
	onN1 := byNode["n1"]
	if onN1 == nil {
		t.Fatalf("no attempt on n1: %v", byNode)
	}
	report := func(subject string) {
		l.apply(metricsInput{subject: subject, r: bus.MetricsReport{
			AttemptRef: onN1.ref(), Seq: 1, Step: 1, Values: map[string]float64{"tokens": 15, "val_loss": 1},
		}}, now)
	}
	report(bus.MetricsSubject(s.rec.Name, onN1.rec.ID, "n2"))
	if len(onN1.rec.Rungs) != 0 {
		t.Fatalf("n2's report for n1's attempt passed rungs %+v", onN1.rec.Rungs)
	}
	report(bus.MetricsSubject(s.rec.Name, onN1.rec.ID, "n1"))
	if len(onN1.rec.Rungs) != 1 {
		t.Fatalf("n1's own report passed rungs %+v, want the first", onN1.rec.Rungs)
	}
	onN1.rec.Rungs = nil
	report(bus.SubjectMetrics + "." + s.rec.Name + "." + onN1.rec.ID)
	if len(onN1.rec.Rungs) != 1 {
		t.Errorf("a report on the subject without a node passed rungs %+v, want the first", onN1.rec.Rungs)
	}
}
