// Package proto holds the protocol buffer definitions of asymptote's wire
// protocols and the Go code generated from them (committed, so building
// needs no code generator).
//
// Regenerate after editing a .proto file with
//
//	go generate ./proto
//
// which runs buf and the protoc-gen-go and protoc-gen-go-grpc plugins pinned
// in tools/go.mod through `go tool`; no protoc binary is needed. The first
// run compiles buf and takes a few minutes.
package proto

//go:generate sh -c "cd .. && go tool -modfile=tools/go.mod buf lint && go tool -modfile=tools/go.mod buf generate"
