"""Generated protobuf and gRPC stubs; regenerate with plugins/python/generate.sh."""
