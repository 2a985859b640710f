"""Inspect or compare ONNX Runtime training checkpoints (the "ODTC" flatbuffer).

Runs in the onnxruntime-training-cpu==1.19.2 venv (scripts/requirements-ort-training.txt).
Every checkpoint is read twice: by ONNX Runtime's own loader
(onnxruntime.training.api.CheckpointState.load_checkpoint, which validates the
buffer and version), and by the flatbuffer classes ONNX Runtime ships, which
also expose what the Python API hides (optimizer groups, step, initial
learning rate, momentums, properties).

  ort_checkpoint.py show CKPT [--values N]
  ort_checkpoint.py compare CKPT OTHER [--atol 0] [--params-only]
      OTHER: another checkpoint, or a .safetensors file (parameters only)
      exit status 1 when a tensor is missing, differs in shape/dtype, or
      differs by more than --atol; 0 otherwise
  ort_checkpoint.py dump CKPT OUT.json
      everything as JSON (float32 values), for tests that need the numbers
"""

import argparse
import importlib.util
import json
import os
import struct
import sys
import types

import numpy as np

ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
               10: np.float16, 11: np.float64}


def _ort_training_api():
    spec = importlib.util.find_spec("onnxruntime")
    if "onnxruntime.training" not in sys.modules:
        # Skip onnxruntime/training/__init__.py: it imports torch, which the API does not need.
        pkg = types.ModuleType("onnxruntime.training")
        pkg.__path__ = [os.path.join(os.path.dirname(spec.origin), "training")]
        sys.modules["onnxruntime.training"] = pkg
    from onnxruntime.training.api import CheckpointState

    return CheckpointState


def _fbs():
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import Checkpoint

    return Checkpoint


def _tensor(t):
    name = t.Name().decode()
    dims = [int(d) for d in t.DimsAsNumpy()] if not t.DimsIsNone() else []
    dt = ONNX_DTYPES.get(t.DataType())
    if dt is None:
        raise SystemExit(f"{name}: unsupported ONNX data type {t.DataType()}")
    raw = t.RawDataAsNumpy().tobytes() if not t.RawDataIsNone() else b""
    arr = np.frombuffer(raw, dtype=dt).reshape(dims) if raw else np.zeros(dims, dt)
    return name, arr


def read_checkpoint(path):
    """-> dict with version, requires_grad/frozen params, optimizer groups, properties."""
    buf = open(path, "rb").read()
    Checkpoint = _fbs()
    if not Checkpoint.Checkpoint.CheckpointBufferHasIdentifier(buf, 0):
        raise SystemExit(f"{path}: not an ONNX Runtime checkpoint (file identifier is not ODTC)")
    ck = Checkpoint.Checkpoint.GetRootAs(buf, 0)
    ms = ck.ModuleState()
    out = {"version": ck.Version(), "requires_grad": {}, "frozen": {}, "optimizer_groups": [], "properties": {}}
    for i in range(ms.RequiresGradParamsLength()):
        n, a = _tensor(ms.RequiresGradParams(i))
        out["requires_grad"][n] = a
    for i in range(ms.FrozenParamsLength()):
        n, a = _tensor(ms.FrozenParams(i))
        out["frozen"][n] = a
    out["is_nominal_state"] = bool(ms.IsNominalState())
    for g in range(ck.OptimizerGroupsLength()):
        og = ck.OptimizerGroups(g)
        states = {}
        for j in range(og.OptimizerStatesLength()):
            ps = og.OptimizerStates(j)
            moms = dict(_tensor(ps.Momentums(k)) for k in range(ps.MomentumsLength()))
            states[ps.ParamName().decode()] = moms
        out["optimizer_groups"].append({"group_name": og.GroupName().decode(), "step": int(og.Step()),
                                        "initial_learning_rate": float(og.InitialLearningRate()),
                                        "states": states})
    pb = ck.PropertyBag()
    if pb is not None:
        for i in range(pb.IntsLength()):
            out["properties"][pb.Ints(i).Name().decode()] = int(pb.Ints(i).Value())
        for i in range(pb.FloatsLength()):
            out["properties"][pb.Floats(i).Name().decode()] = float(pb.Floats(i).Value())
        for i in range(pb.StringsLength()):
            out["properties"][pb.Strings(i).Name().decode()] = pb.Strings(i).Value().decode()

    # Cross-check with ONNX Runtime's own loader.
    state = _ort_training_api().load_checkpoint(path)
    for n, a in {**out["requires_grad"], **out["frozen"]}.items():
        p = state.parameters[n]
        ort_val = np.asarray(p.data)
        if ort_val.shape != a.shape or not np.array_equal(ort_val, a):
            raise SystemExit(f"{path}: {n}: flatbuffer parse disagrees with ONNX Runtime's loader")
        if bool(p.requires_grad) != (n in out["requires_grad"]):
            raise SystemExit(f"{path}: {n}: requires_grad mismatch with ONNX Runtime's loader")
    return out


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8, "BOOL": np.bool_}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return {"version": None, "requires_grad": out, "frozen": {}, "optimizer_groups": [], "properties": {}}


def load_any(path):
    return read_safetensors(path) if path.endswith(".safetensors") else read_checkpoint(path)


def show(args):
    ck = read_checkpoint(args.ckpt)
    print(f"{args.ckpt}: version {ck['version']}, nominal {ck['is_nominal_state']}")
    for kind in ("requires_grad", "frozen"):
        for n, a in sorted(ck[kind].items()):
            vals = ", ".join(f"{x:.6g}" for x in a.reshape(-1)[: args.values])
            l2 = float(np.sqrt((a.astype(np.float64) ** 2).sum())) if a.dtype.kind == "f" else float("nan")
            print(f"  {kind:13s} {n} {a.dtype} {list(a.shape)} l2={l2:.6g} [{vals}]")
    for g in ck["optimizer_groups"]:
        print(f"  optimizer group {g['group_name']}: step {g['step']}, initial_learning_rate {g['initial_learning_rate']}, "
              f"{len(g['states'])} parameter states ({sorted({k for s in g['states'].values() for k in s})})")
    for k, v in sorted(ck["properties"].items()):
        print(f"  property {k} = {v!r}")


def compare(args):
    a, b = read_checkpoint(args.ckpt), load_any(args.other)
    bad = 0
    pa = {**a["requires_grad"], **a["frozen"]}
    pb = {**b["requires_grad"], **b["frozen"]}
    worst = 0.0
    for n in sorted(set(pa) | set(pb)):
        if n not in pa or n not in pb:
            print(f"MISSING {n}: only in {'first' if n in pa else 'second'}")
            bad += 1
            continue
        x, y = pa[n], pb[n]
        if x.shape != y.shape or x.dtype != y.dtype:
            print(f"SHAPE {n}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
            bad += 1
            continue
        d = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()) if x.size else 0.0
        worst = max(worst, d)
        if d > args.atol:
            print(f"DIFF {n}: max abs diff {d:.3g}")
            bad += 1
    if b["version"] is not None:
        ra, rb = set(a["requires_grad"]), set(b["requires_grad"])
        if ra != rb:
            print(f"TRAINABLE sets differ: {sorted(ra ^ rb)}")
            bad += 1
    if not args.params_only and b["version"] is not None:
        ga = {g["group_name"]: g for g in a["optimizer_groups"]}
        gb = {g["group_name"]: g for g in b["optimizer_groups"]}
        if set(ga) != set(gb):
            print(f"OPTIMIZER groups differ: {sorted(ga)} vs {sorted(gb)}")
            bad += 1
        for name in sorted(set(ga) & set(gb)):
            x, y = ga[name], gb[name]
            if x["step"] != y["step"] or x["initial_learning_rate"] != y["initial_learning_rate"]:
                print(f"OPTIMIZER {name}: step/lr {x['step']}/{x['initial_learning_rate']} vs {y['step']}/{y['initial_learning_rate']}")
                bad += 1
            for p in sorted(set(x["states"]) | set(y["states"])):
                mx, my = x["states"].get(p, {}), y["states"].get(p, {})
                for m in sorted(set(mx) | set(my)):
                    if m not in mx or m not in my:
                        print(f"MISSING {name}/{p}/{m}")
                        bad += 1
                        continue
                    d = float(np.abs(mx[m].astype(np.float64) - my[m].astype(np.float64)).max()) if mx[m].size else 0.0
                    worst = max(worst, d)
                    if d > args.atol:
                        print(f"DIFF {name}/{p}/{m}: max abs diff {d:.3g}")
                        bad += 1
        if a["properties"] != b["properties"]:
            print(f"PROPERTIES differ: {a['properties']} vs {b['properties']}")
            bad += 1
    print(f"{'MISMATCH' if bad else 'OK'}: {bad} problems, largest abs diff {worst:.3g} (atol {args.atol})")
    return 1 if bad else 0


def dump(args):
    ck = read_checkpoint(args.ckpt)

    def enc(d):
        return {n: {"dtype": str(a.dtype), "shape": list(a.shape),
                    "data": [float(np.float32(x)) if a.dtype.kind == "f" else int(x) for x in a.reshape(-1)]}
                for n, a in sorted(d.items())}

    doc = {"version": ck["version"], "is_nominal_state": ck["is_nominal_state"],
           "requires_grad_params": enc(ck["requires_grad"]), "frozen_params": enc(ck["frozen"]),
           "optimizer_groups": [{**{k: v for k, v in g.items() if k != "states"},
                                 "states": {p: enc(m) for p, m in sorted(g["states"].items())}}
                                for g in ck["optimizer_groups"]],
           "properties": ck["properties"]}
    with open(args.out, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show")
    s.add_argument("ckpt")
    s.add_argument("--values", type=int, default=4)
    c = sub.add_parser("compare")
    c.add_argument("ckpt")
    c.add_argument("other")
    c.add_argument("--atol", type=float, default=0.0)
    c.add_argument("--params-only", action="store_true")
    d = sub.add_parser("dump")
    d.add_argument("ckpt")
    d.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "show":
        show(args)
    elif args.cmd == "compare":
        sys.exit(compare(args))
    else:
        dump(args)


if __name__ == "__main__":
    main()
