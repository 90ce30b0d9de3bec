package security_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/security/securitytest"
)

// BenchmarkBus measures what TLS and authorization cost on the bus's two
// hot paths, on the same nats-server binary with and without them: a
// dispatch (the leader's request to an agent and the agent's reply, 1 KiB
// each way), one at a time and 16 in flight; and an outcome (the agent's
// JetStream publish of a 1 KiB event, acknowledged by the server), one at
// a time and pipelined. Run with
//
//	go test -run '^$' -bench BenchmarkBus -benchtime 2000x ./internal/security/
func BenchmarkBus(b *testing.B) {
	bundle, err := security.Init(security.Plan{Dir: b.TempDir() + "/secure", Agents: []string{"gpu-01"}})
	if err != nil {
		b.Fatal(err)
	}
	secure := securitytest.StartNATS(b, bundle)
	plain := securitytest.StartNATSWith(b, b.TempDir(), "")
	for _, mode := range []struct {
		name               string
		url                string
		coordinator, agent security.NATS
	}{
		{"plain", plain.URL, security.NATS{}, security.NATS{}},
		{"tls+auth", secure.URL, securitytest.NATSOf(bundle, "coordinator"), securitytest.NATSOf(bundle, "agent-gpu-01")},
	} {
		url := mode.url
		if mode.name == "plain" {
			url = "nats://" + url[len("tls://"):]
		}
		co, ag := connect(b, url, mode.coordinator), connect(b, url, mode.agent)
		payload := make([]byte, 1024)
		if _, err := ag.Subscribe(bus.DispatchSubject("gpu-01"), func(m *nats.Msg) { _ = m.Respond(payload) }); err != nil {
			b.Fatal(err)
		}
		if err := ag.Flush(); err != nil {
			b.Fatal(err)
		}
		b.Run(mode.name+"/dispatch", func(b *testing.B) {
			b.SetBytes(2 * int64(len(payload)))
			for b.Loop() {
				if _, err := co.Request(bus.DispatchSubject("gpu-01"), payload, 5*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Throughput: many dispatches in flight at once, as a leader
		// placing a study's trials sends them.
		b.Run(mode.name+"/dispatch-parallel", func(b *testing.B) {
			b.SetBytes(2 * int64(len(payload)))
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := co.Request(bus.DispatchSubject("gpu-01"), payload, 5*time.Second); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		cjs, err := jetstream.New(co)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		_ = cjs.DeleteStream(ctx, bus.StreamEvents)
		if _, err := bus.Declare(ctx, cjs, 1); err != nil {
			b.Fatal(err)
		}
		ajs, err := jetstream.New(ag)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(mode.name+"/outcome", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			i := 0
			for b.Loop() {
				i++
				if _, err := ajs.Publish(ctx, bus.EventSubject("s", fmt.Sprint(i), "gpu-01"), payload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/outcome-async", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			i := 0
			for b.Loop() {
				i++
				if _, err := ajs.PublishAsync(bus.EventSubject("s", fmt.Sprint("a", i), "gpu-01"), payload); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-ajs.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				b.Fatal("async publishes not acknowledged within 30s")
			}
		})
	}
}

func connect(b *testing.B, url string, sec security.NATS) *nats.Conn {
	b.Helper()
	opts, err := sec.Options()
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}
