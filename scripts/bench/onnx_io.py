"""Peer timings for the Go benchmarks of internal/onnx (bench_test.go):
onnx Python's shape_inference on testdata/onnx/t5_ts17.onnx and save/load of
a 64 MiB model (16 MatMuls with [1024,1024] float32 weights), inline and
with external data. Prints medians of several runs.

Run: .venv/bin/python scripts/bench/onnx_io.py
Compare: go test ./internal/onnx -run '^$' -bench . -benchtime 10x
"""

import os
import statistics
import tempfile
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_ms(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def weights_model(n=16):
    w = (np.arange(1024 * 1024) % 97).astype(np.float32).reshape(1024, 1024) * np.float32(0.01)
    nodes, inits, x = [], [], "x"
    for i in range(n):
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"]))
        x = f"h{i}"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 1024])],
                          [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, ["batch", 1024])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def main():
    t5 = onnx.load(os.path.join(REPO, "testdata", "onnx", "t5_ts17.onnx"))
    print(f"shape_inference t5_ts17 ({len(t5.graph.node)} nodes): "
          f"{median_ms(lambda: shape_inference.infer_shapes(t5, data_prop=True), 20):.2f} ms")
    m = weights_model()
    with tempfile.TemporaryDirectory() as d:
        inline, ext = os.path.join(d, "inline.onnx"), os.path.join(d, "external.onnx")
        print(f"save inline 64 MiB: {median_ms(lambda: onnx.save(m, inline), 10):.1f} ms")
        print(f"load inline 64 MiB: {median_ms(lambda: onnx.load(inline), 10):.1f} ms")

        def save_ext():
            onnx.save_model(m, ext, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="external.onnx.data", size_threshold=1024)
            # onnx Python converts the model in place; undo for the next run.
            onnx.load_external_data_for_model(m, d)

        print(f"save external 64 MiB: {median_ms(save_ext, 10):.1f} ms")
        print(f"load external 64 MiB: {median_ms(lambda: onnx.load(ext), 10):.1f} ms")
    print("onnx", onnx.__version__)


if __name__ == "__main__":
    main()
