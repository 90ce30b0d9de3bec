package api

// VerbHistory reads a study's metric history through the leader, which
// answers only a caller whose team the study is (or the operator). Its
// reply is a stream of messages to the request's reply subject: each
// chunk of the history (a bus.Curve, as the history stream stores it)
// with HistorySeqHeader counting from 1, then one message with
// HistoryEndHeader set whose body is the usual reply envelope of a
// HistoryEnd, or of the error that ended the read.
const VerbHistory = "history"

const (
	// HistorySeqHeader numbers a history reply's chunks from 1, so a
	// client sees a message that never reached it.
	HistorySeqHeader = "Asymptote-History-Seq"
	// HistoryEndHeader marks the last message of a history reply.
	HistoryEndHeader = "Asymptote-History-End"
)

// HistoryRequest names a study, and optionally one of its trials, whose
// history to read.
type HistoryRequest struct {
	Study string `json:"study"`
	Trial string `json:"trial,omitempty"`
}

// HistoryEnd ends a history reply: how many chunks it sent.
type HistoryEnd struct {
	Chunks int `json:"chunks"`
}
