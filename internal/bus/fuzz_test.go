package bus

import (
	"testing"
)

// messageTypes returns a new value of every message type the bus decodes,
// in a fixed order that the fuzzer's kind byte indexes.
func messageTypes() []validator {
	return []validator{
		&Dispatch{}, &DispatchReply{}, &DispatchBatch{}, &DispatchBatchReply{},
		&Heartbeat{}, &HeartbeatReply{}, &Cancel{}, &Event{}, &MetricsReport{},
		&DrainReply{}, &Curve{},
	}
}

// FuzzDecode feeds arbitrary bytes to every bus message decoder. Whatever
// comes off the wire, a decoder returns an error or a message that passes
// its checks; and a message it accepts encodes to bytes it accepts again,
// so a relayed or replayed message is never refused where the first copy
// was taken.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./internal/bus/
func FuzzDecode(f *testing.F) {
	const sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	seeds := []string{
		`{"study":"s","trial":"t","attempt":1,"method":"synthetic","params":{"x":1},"resources":{"cpu":1,"memory":1048576}}`,
		`{"dispatches":[{"study":"s","trial":"t","attempt":1}]}`,
		`{"node":"gpu-01","boot":"b","resources":{"cpu":2,"memory":1},"running":[{"study":"s","trial":"t","attempt":1}]}`,
		`{"study":"s","trial":"t","attempt":1,"kind":"outcome","outcome":"succeeded","metrics":{"val_loss":2.5},"non_finite":{"x":"NaN"}}`,
		`{"study":"s","trial":"t","attempt":1,"seq":1,"step":3,"values":{"loss":1}}`,
		`{"study":"s","trial":"t","attempt":1,"chunk":0,"last":true,"first":1,"steps":[1],"times":[5],"values":{"loss":[1]}}`,
		`{"leader":"c1","allow":{"version":"v","methods":{"m":"` + sha + `"},"programs":{"/usr/bin/python3":"` + sha + `"}}}`,
		`{"node":"n"}`, `{}`, `null`, `[]`, `{"attempt":-1}`,
	}
	for kind := range messageTypes() {
		for _, s := range seeds {
			f.Add(uint8(kind), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		types := messageTypes()
		m := types[int(kind)%len(types)]
		if err := Decode(data, m); err != nil {
			return
		}
		again := messageTypes()[int(kind)%len(types)]
		if err := Decode(Encode(m), again); err != nil {
			t.Fatalf("%T: accepted %q, but not its own encoding %q: %v", m, data, Encode(m), err)
		}
	})
}
