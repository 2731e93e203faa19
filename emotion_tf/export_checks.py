"""Check an export before running it: the ops its graph may run, and the contract we rely on.

A SavedModel is a program: its graph can read and write files (`ReadFile`, `WriteFile`), open
network connections or call back into Python (`PyFunc`). `check_export` reads `saved_model.pb`
(without loading it) and refuses, with one line naming the op, any op outside `ALLOWED_OPS`,
the ops an emotion-tf export (or any plain image classifier) needs. Checkpoint ops (`SaveV2`,
`RestoreV2`, ...) are allowed only in functions the serving signatures never call: the saver's.

The contract: both signatures with their one input (`image_bytes` string, `images` uint8), the
four outputs, metadata with `class_names`, `input_size` and `channels`, and `probabilities`
as wide as the class list. A mismatch is refused with one line instead of a `KeyError` or a
silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emotion_tf.errors import ModelDirError

# Tensor math, image decoding and resizing, control flow and variables; nothing that touches
# files, the network, the process or Python.
ALLOWED_OPS = frozenset(
    """
    Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin Asin Asinh Assert
    AssignAddVariableOp AssignSubVariableOp AssignVariableOp Atan Atan2 Atanh AvgPool
    AvgPool3D BatchMatMul BatchMatMulV2 BatchMatMulV3 BiasAdd BitwiseAnd BitwiseOr
    BitwiseXor BroadcastArgs BroadcastTo Bucketize Cast Ceil CheckNumerics ClipByValue
    Complex ConcatV2 Const Conv2D Conv3D Cos Cosh CropAndResize Cumprod Cumsum DecodeBmp
    DecodeGif DecodeImage DecodeJpeg DecodePng DepthToSpace DepthwiseConv2dNative
    DisableCopyOnRead Div DivNoNan Einsum Elu Empty EncodeJpeg EncodePng EnsureShape Equal
    Erf Erfc Exp ExpandDims Expm1 ExtractImagePatches ExtractJpegShape Fill Floor FloorDiv
    FloorMod FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 Gather GatherNd GatherV2
    Greater GreaterEqual HSVToRGB Identity IdentityN If InTopKV2 Inv InvertPermutation
    IsFinite IsInf IsNan L2Loss LRN LeakyRelu LeftShift Less LessEqual LinSpace Log Log1p
    LogSoftmax LogicalAnd LogicalNot LogicalOr MatMul Max MaxPool MaxPool3D MaxPoolV2
    MaxPoolWithArgmax Maximum Mean Min Minimum MirrorPad Mod Mul MulNoNan Neg NoOp
    NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5 NotEqual OneHot OnesLike
    Pack Pad PadV2 PartitionedCall Placeholder PlaceholderWithDefault Pow Prod RGBToHSV
    Range Rank ReadVariableOp RealDiv Reciprocal Relu Relu6 Reshape ResizeArea ResizeBicubic
    ResizeBilinear ResizeNearestNeighbor ReverseV2 RightShift Rint Round Rsqrt
    ScaleAndTranslate ScatterNd Select SelectV2 Selu Shape ShapeN Sigmoid Sign Sin Sinh Size
    Slice Softmax Softplus Softsign SpaceToDepth Split SplitV Sqrt Square SquaredDifference
    Squeeze StatefulPartitionedCall StatelessIf StatelessRandomNormalV2
    StatelessRandomUniformV2 StatelessWhile StaticRegexFullMatch StopGradient StridedSlice
    StringJoin Sub Sum Tan Tanh TensorListFromTensor TensorListGetItem TensorListLength
    TensorListReserve TensorListSetItem TensorListStack Tile TopKV2 Transpose Unpack
    VarHandleOp VarIsInitializedOp Where While Xdivy Xlog1py ZerosLike
    """.split()  # noqa: SIM905 (a word list reads better than 200 quoted names)
)
# Checkpoint I/O: the saver functions need them; a serving signature never does.
SAVER_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"})

SIGNATURE_INPUTS = {
    "serving_default": ("image_bytes", "DT_STRING"),
    "serving_images": ("images", "DT_UINT8"),
}
# Checked like the others where an export has it (exports made with test-time flip).
OPTIONAL_SIGNATURE_INPUTS = {"serving_images_one_view": ("images", "DT_UINT8")}
OUTPUTS = ("probabilities", "label", "confidence", "class_index")


def read_meta_graph(version_dir: Path) -> Any:
    """The `serve` MetaGraphDef of `version_dir/saved_model.pb`, parsed without loading it."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(version_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except (OSError, DecodeError) as err:
        raise ModelDirError(f"cannot read {path}: {err}") from err
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ModelDirError(f"SavedModel has no 'serve' meta-graph: {version_dir}")


def _called_functions(nodes: Iterable[Any], library: set[str]) -> set[str]:
    """Names of the library functions that `nodes` call (as op type or through attributes)."""
    called = set()
    for node in nodes:
        if node.op in library:
            called.add(node.op)
        for value in node.attr.values():
            if value.HasField("func"):
                called.add(value.func.name)
            called.update(function.name for function in value.list.func)
    return called & library


def _signature_functions(meta_graph: Any) -> set[str]:
    """Every function the serving signatures can reach."""
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    roots = []
    for signature in meta_graph.signature_def.values():
        for tensor in [*signature.inputs.values(), *signature.outputs.values()]:
            node = nodes.get(tensor.name.split(":")[0].lstrip("^"))
            if node is not None:
                roots.append(node)
    reached: set[str] = set()
    todo = _called_functions(roots, set(functions))
    while todo:
        name = todo.pop()
        reached.add(name)
        todo |= _called_functions(functions[name].node_def, set(functions)) - reached
    return reached


def disallowed_ops(meta_graph: Any) -> list[tuple[str, str]]:
    """(op, where) for every op of the graph outside the allow-list, in graph order."""
    serving = _signature_functions(meta_graph)
    found = []
    for node in meta_graph.graph_def.node:
        if node.op not in ALLOWED_OPS and node.op not in SAVER_OPS:
            found.append((node.op, f"graph node {node.name!r}"))
    library = {f.signature.name for f in meta_graph.graph_def.library.function}
    for function in meta_graph.graph_def.library.function:
        allowed = ALLOWED_OPS if function.signature.name in serving else ALLOWED_OPS | SAVER_OPS
        for node in function.node_def:
            if node.op not in allowed and node.op not in library:
                found.append((node.op, f"function {function.signature.name!r}"))
    return found


def check_ops(meta_graph: Any, version_dir: Path) -> None:
    """Refuse an export whose graph has an op outside the allow-list, naming the op."""
    found = disallowed_ops(meta_graph)
    if found:
        op, where = found[0]
        others = sorted({name for name, _ in found} - {op})
        more = f" (also: {', '.join(others)})" if others else ""
        raise ModelDirError(
            f"refusing to run {version_dir}: its graph uses op {op} in {where}, which is not on "
            f"the allow-list of image-model ops{more}; pass --trust-model if you trust this export"
        )


def check_contract(meta_graph: Any, metadata: dict[str, Any], version_dir: Path) -> None:
    """Refuse an export whose signatures, outputs or metadata are not what we run."""
    where = f"export {version_dir}"
    names = metadata.get("class_names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ModelDirError(f"{where}: metadata 'class_names' must list at least two names")
    for key, ok in (
        ("input_size", lambda v: isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096),
        ("channels", lambda v: v in (1, 3) and not isinstance(v, bool)),
    ):
        if key not in metadata:
            raise ModelDirError(f"{where}: metadata has no {key!r}")
        if not ok(metadata[key]):
            raise ModelDirError(f"{where}: metadata {key!r} is invalid: {metadata[key]!r}")
    from tensorflow.core.framework import types_pb2

    present = {
        name: spec
        for name, spec in OPTIONAL_SIGNATURE_INPUTS.items()
        if name in meta_graph.signature_def
    }
    for signature_name, (input_name, dtype) in {**SIGNATURE_INPUTS, **present}.items():
        signature = meta_graph.signature_def.get(signature_name)
        if signature is None:
            raise ModelDirError(f"{where}: no signature {signature_name!r}")
        inputs = dict(signature.inputs)
        if (
            set(inputs) != {input_name}
            or types_pb2.DataType.Name(inputs[input_name].dtype) != dtype
        ):
            found = {k: types_pb2.DataType.Name(v.dtype) for k, v in inputs.items()}
            raise ModelDirError(
                f"{where}: signature {signature_name!r} must take one input {input_name!r} "
                f"({dtype}), it takes {found}"
            )
        missing = [name for name in OUTPUTS if name not in signature.outputs]
        if missing:
            raise ModelDirError(
                f"{where}: signature {signature_name!r} lacks output(s) {', '.join(missing)}"
            )
        dims = [d.size for d in signature.outputs["probabilities"].tensor_shape.dim]
        if len(dims) == 2 and dims[1] >= 0 and dims[1] != len(names):
            raise ModelDirError(
                f"{where}: 'probabilities' has {dims[1]} columns but the metadata lists "
                f"{len(names)} classes {names}"
            )


def check_export(version_dir: Path, metadata: dict[str, Any], trust: bool = False) -> Any:
    """Check ops (unless `trust`) and contract; return the parsed meta-graph."""
    meta_graph = read_meta_graph(version_dir)
    if not trust:
        check_ops(meta_graph, version_dir)
    check_contract(meta_graph, metadata, version_dir)
    return meta_graph
