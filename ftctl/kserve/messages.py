"""KServe v2 gRPC messages, declared with protobuf's descriptor API (no protoc at run time).

The declaration below is the one in ``ftctl/data/kserve/grpc_service.proto`` (package
``inference``, the protocol's field numbers); ``tests/unit/test_clients_grpc_kserve.py``
compiles that file with grpcio-tools and checks both agree. ``M.<Name>`` are the message
classes; ``method(name)`` is the full RPC path for grpc's generic API.
"""

from __future__ import annotations

from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = "GRPCInferenceService"
PROTO_NAME = "ftctl/kserve/grpc_service.proto"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}

# message -> [(field, number, type, label)]; label: "" (singular), "repeated", "map"
# (map<string, type>), or "oneof:<name>". A type that is not a scalar is a message name,
# relative to the package ("ModelInferResponse") or nested ("ModelInferRequest.X").
_PARAMS = ("parameters", "InferParameter", "map")
_TENSOR_META = "ModelMetadataResponse.TensorMetadata"
MESSAGES: dict[str, list[tuple[str, int, str, str]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", "")],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", "")],
    "ModelReadyRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "ModelReadyResponse": [("ready", 1, "bool", "")],
    "ModelMetadataRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    _TENSOR_META: [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
    ],
    "ModelMetadataResponse": [
        ("name", 1, "string", ""),
        ("versions", 2, "string", "repeated"),
        ("platform", 3, "string", ""),
        ("inputs", 4, _TENSOR_META, "repeated"),
        ("outputs", 5, _TENSOR_META, "repeated"),
    ],
    "InferParameter": [
        ("bool_param", 1, "bool", "oneof:parameter_choice"),
        ("int64_param", 2, "int64", "oneof:parameter_choice"),
        ("string_param", 3, "string", "oneof:parameter_choice"),
        ("double_param", 4, "double", "oneof:parameter_choice"),
        ("uint64_param", 5, "uint64", "oneof:parameter_choice"),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", "repeated"),
        ("int_contents", 2, "int32", "repeated"),
        ("int64_contents", 3, "int64", "repeated"),
        ("uint_contents", 4, "uint32", "repeated"),
        ("uint64_contents", 5, "uint64", "repeated"),
        ("fp32_contents", 6, "float", "repeated"),
        ("fp64_contents", 7, "double", "repeated"),
        ("bytes_contents", 8, "bytes", "repeated"),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
        ("parameters", 4, "InferParameter", "map"),
        ("contents", 5, "InferTensorContents", ""),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string", ""),
        ("parameters", 2, "InferParameter", "map"),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", ""),
        ("model_version", 2, "string", ""),
        ("id", 3, "string", ""),
        ("parameters", 4, "InferParameter", "map"),
        ("inputs", 5, "ModelInferRequest.InferInputTensor", "repeated"),
        ("outputs", 6, "ModelInferRequest.InferRequestedOutputTensor", "repeated"),
        ("raw_input_contents", 7, "bytes", "repeated"),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
        ("parameters", 4, "InferParameter", "map"),
        ("contents", 5, "InferTensorContents", ""),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", ""),
        ("model_version", 2, "string", ""),
        ("id", 3, "string", ""),
        ("parameters", 4, "InferParameter", "map"),
        ("outputs", 5, "ModelInferResponse.InferOutputTensor", "repeated"),
        ("raw_output_contents", 6, "bytes", "repeated"),
    ],
    "ModelStreamInferResponse": [
        ("error_message", 1, "string", ""),
        ("infer_response", 2, "ModelInferResponse", ""),
    ],
}

# rpc -> (request, response, client streaming, server streaming)
RPCS: dict[str, tuple[str, str, bool, bool]] = {
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse", False, False),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse", False, False),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse", False, False),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse", False, False),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse", False, False),
    "ModelStreamInfer": ("ModelInferRequest", "ModelStreamInferResponse", True, True),
}


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def _field(
    msg: descriptor_pb2.DescriptorProto,
    path: str,
    name: str,
    number: int,
    typ: str,
    label: str,
) -> None:
    """Add one field to ``msg`` (whose full name under the package is ``path``)."""
    f = msg.field.add(name=name, number=number)
    f.label = _F.LABEL_REPEATED if label in ("repeated", "map") else _F.LABEL_OPTIONAL
    if label.startswith("oneof:"):
        oneof = label.split(":", 1)[1]
        names = [o.name for o in msg.oneof_decl]
        if oneof not in names:
            msg.oneof_decl.add(name=oneof)
            names.append(oneof)
        f.oneof_index = names.index(oneof)
    if label == "map":
        # A map is a repeated nested <Name>Entry {key = 1; value = 2} with map_entry set.
        entry = msg.nested_type.add(name=_camel(name) + "Entry")
        entry.options.map_entry = True
        _field(entry, f"{path}.{entry.name}", "key", 1, "string", "")
        _field(entry, f"{path}.{entry.name}", "value", 2, typ, "")
        f.type = _F.TYPE_MESSAGE
        f.type_name = f".{PACKAGE}.{path}.{entry.name}"
        return
    if typ in _SCALARS:
        f.type = _SCALARS[typ]
    else:
        f.type = _F.TYPE_MESSAGE
        f.type_name = f".{PACKAGE}.{typ}"


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The hand-declared file, as protoc would describe ``grpc_service.proto``."""
    fd = descriptor_pb2.FileDescriptorProto(name=PROTO_NAME, package=PACKAGE, syntax="proto3")
    protos: dict[str, descriptor_pb2.DescriptorProto] = {}
    # Parents before their nested messages; field order as declared.
    for full in sorted(MESSAGES, key=lambda n: n.count(".")):
        parent, _, leaf = full.rpartition(".")
        holder = protos[parent].nested_type if parent else fd.message_type
        msg = holder.add(name=leaf)
        protos[full] = msg
    for full, fields in MESSAGES.items():
        for name, number, typ, label in fields:
            _field(protos[full], full, name, number, typ, label)
    svc = fd.service.add(name=SERVICE)
    for rpc, (req, resp, cs, ss) in RPCS.items():
        m = svc.method.add(
            name=rpc, input_type=f".{PACKAGE}.{req}", output_type=f".{PACKAGE}.{resp}"
        )
        if cs:
            m.client_streaming = True
        if ss:
            m.server_streaming = True
    return fd


def _build() -> SimpleNamespace:
    pool = descriptor_pool.DescriptorPool()
    fdesc = pool.Add(file_descriptor())
    classes = {}
    for full in MESSAGES:
        desc = pool.FindMessageTypeByName(f"{PACKAGE}.{full}")
        classes[full.replace(".", "_")] = message_factory.GetMessageClass(desc)
    del fdesc
    return SimpleNamespace(**classes)


M = _build()


def method(rpc: str) -> str:
    """The HTTP/2 path of an RPC, e.g. ``/inference.GRPCInferenceService/ModelInfer``."""
    if rpc not in RPCS:
        raise KeyError(rpc)
    return f"/{PACKAGE}.{SERVICE}/{rpc}"
