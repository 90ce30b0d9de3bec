#!/usr/bin/env bash
# Regenerates the Python stubs under asymptote_method/_pb from
# proto/asymptote/v1/method.proto (the method protocol) and the stand-in
# protos in plugins/python/proto (health, go-plugin's services, rpc status).
#
# It must run Debian's protoc and grpc_python_plugin (packages
# protobuf-compiler, protobuf-compiler-grpc and libprotobuf-dev), whose
# versions match the python3-protobuf 3.21 and python3-grpcio 1.51 runtime
# the SDK targets. The stubs are committed; run this after changing a proto.
set -euo pipefail
cd "$(dirname "$0")"
root=../..
out=asymptote_method/_pb

for tool in protoc grpc_python_plugin; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "generate.sh: $tool not found; apt-get install protobuf-compiler protobuf-compiler-grpc libprotobuf-dev" >&2
    exit 1
  }
done
[ -f /usr/include/google/protobuf/timestamp.proto ] || {
  echo "generate.sh: google/protobuf/*.proto not found; apt-get install libprotobuf-dev" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grpc=(--plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)")
protoc -I "$root/proto" -I /usr/include "${grpc[@]}" \
  --python_out="$tmp" --grpc_python_out="$tmp" asymptote/v1/method.proto
protoc -I proto -I /usr/include "${grpc[@]}" \
  --python_out="$tmp" --grpc_python_out="$tmp" health.proto goplugin.proto rpc_status.proto

# Flatten into one package and make the generated imports relative, so the
# stubs never shadow or clash with top-level modules such as grpc.
rm -f "$out"/*_pb2.py "$out"/*_pb2_grpc.py
# rpc_status.proto has no service.
rm -f "$tmp"/rpc_status_pb2_grpc.py
cp "$tmp"/asymptote/v1/*.py "$tmp"/*.py "$out"/
sed -i -E \
  -e 's/^from asymptote\.v1 import (\w+_pb2)/from . import \1/' \
  -e 's/^import (method|health|goplugin|rpc_status)_pb2 as/from . import \1_pb2 as/' \
  "$out"/*.py
echo "generate.sh: wrote $(ls "$out" | grep -c _pb2) files to plugins/python/$out"
