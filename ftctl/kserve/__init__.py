"""KServe v2 gRPC: the messages (no protoc at run time) and the wire both sides speak."""
