"""Export the shipped checkpoint to three ONNX variants and write models/mslesion-unet3d-v1/manifest.json.

One network was trained with modality dropout (missing channels = 0). A missing channel that is all zeros adds
nothing to the first convolution, so each variant is the same U-Net whose first convolution keeps only the
weights of its channels: mathematically identical to feeding zeros, and a plain graph (Conv, ConvTranspose,
InstanceNormalization, LeakyRelu, Concat).

  python3 export.py [--fold A] [--ckpt checkpoints/A_last.pt]
"""
import argparse
import hashlib
import json
import os
import numpy as np
import torch
from common import CKPT, WORK, CHANNELS, CLIP_PERCENTILES, REPO, FOLDS
from net import UNet3D

MODEL_DIR = os.path.join(REPO, "models", "mslesion-unet3d-v1")
VARIANTS = [("flair-t2-t1", ("FLAIR", "T2", "T1")), ("flair-t2", ("FLAIR", "T2")), ("flair", ("FLAIR",))]


def variant_net(state, channels):
    idx = [CHANNELS.index(c) for c in channels]
    net = UNet3D(in_ch=len(idx))
    sd = {k: v.float().clone() for k, v in state.items()}
    sd["enc.0.c1.weight"] = sd["enc.0.c1.weight"][:, idx].contiguous()
    net.load_state_dict(sd)
    net.eval()
    return net


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", default="A")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out-dir", default=MODEL_DIR, help="model folder to write (default the shipped one)")
    ap.add_argument("--id", default="mslesion-unet3d-v1")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt = args.ckpt or os.path.join(CKPT, f"{args.fold}_last.pt")
    ck = torch.load(ckpt, map_location="cpu")
    state, meta = ck["model"], ck["meta"]
    with open(os.path.join(WORK, f"inner_{args.fold}{args.tag}.json")) as f:
        inner = json.load(f)
    assert inner["iteration"] == ck["iteration"], "inner validation was run on another checkpoint"
    full = UNet3D()
    full.load_state_dict({k: v.float() for k, v in state.items()})
    full.eval()
    model_dir = args.out_dir
    os.makedirs(model_dir, exist_ok=True)
    variants = []
    rng = np.random.default_rng(0)
    for vid, chans in VARIANTS:
        net = variant_net(state, chans)
        x = torch.from_numpy(rng.normal(0, 1, (1, len(chans), 48, 48, 48)).astype(np.float32))
        # check: the sliced network equals the full one with zeros in the missing channels
        xf = torch.zeros(1, 3, 48, 48, 48)
        for k, c in enumerate(chans):
            xf[:, CHANNELS.index(c)] = x[:, k]
        with torch.no_grad():
            d = (net(x) - full(xf)).abs().max().item()
        assert d < 1e-4, (vid, d)
        path = os.path.join(model_dir, f"{vid}.onnx")
        torch.onnx.export(net, x, path, opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N", 2: "D", 3: "H", 4: "W"}, "logits": {0: "N", 2: "D", 3: "H", 4: "W"}},
                          do_constant_folding=True)
        if model_dir == MODEL_DIR:
            np.save(os.path.join(WORK, f"onnxcheck_{vid}_in.npy"), x.numpy())
            with torch.no_grad():
                np.save(os.path.join(WORK, f"onnxcheck_{vid}_out.npy"), net(x).numpy())
        variants.append({"id": vid, "channels": list(chans), "file": f"{vid}.onnx", "sha256": sha256(path)})
        print(vid, os.path.getsize(path), "bytes; sliced-vs-zero-filled max diff", d)
    if model_dir == MODEL_DIR:
        # weights-only fp16 checkpoint to resume training in a later session (see models/training/README.md)
        os.makedirs(os.path.join(model_dir, "checkpoint"), exist_ok=True)
        torch.save({"model": {k: v.half() for k, v in state.items()}, "iteration": ck["iteration"], "meta": meta},
                   os.path.join(model_dir, "checkpoint", "weights_fp16.pt"))
    norm = {c: {"method": "zscore", "mask": "brain", "clipPercentiles": list(CLIP_PERCENTILES), "outsideValue": 0} for c in CHANNELS}
    tests = {}
    for fold in FOLDS:
        p = os.path.join(WORK, f"test_{fold}{args.tag}.json")
        if os.path.exists(p):
            with open(p) as f:
                t = json.load(f)
            tests[t["test_case"]] = {"fold": fold, "iteration": t["iteration"], "threshold": t["threshold"],
                                     **{v: {k: round(r[k], 4) for k in ("dice", "precision", "recall", "f1", "volumeErrorPct")}
                                        for v, r in t["results"].items()}}
    manifest = {
        "schemaVersion": 1,
        "id": args.id,
        "name": "MS lesion segmentation, compact 3D U-Net trained on synthesised and real open_ms data",
        "version": "1.0.0",
        "task": "ms-lesion-segmentation",
        "family": "Artificial Intelligence",
        "license": "Model weights and code: same licence as this repository (ms-lesion-service). Trained on the open_ms "
                   "data (Lesjak et al., Neuroinformatics 2017/2016; CC-BY 4.0, attribution required). No FSL atlas "
                   "or third-party weights were used.",
        "intendedUse": "Research use only, not for clinical use: segmentation of T2/FLAIR-hyperintense white-matter "
                       "lesions of multiple sclerosis on adult brain MRI (FLAIR required; T2 and T1 optional). Not "
                       "validated beyond two real test cases; see MODEL_CARD.md.",
        "authors": "ms-lesion-service (models/training)",
        "orientation": "RAS",
        "spacing": [1, 1, 1],
        "inference": {"mode": "sliding-window", "patchSize": [meta["patch"]] * 3, "tileStep": 0.5, "gaussian": True,
                      "mirrorAxes": [2], "batchSize": 2},
        "normalization": norm,
        "input": {"name": "input"},
        "output": {"name": "logits", "kind": "logits", "activation": "softmax", "labels": ["background", "lesion"]},
        "foregroundLabel": 1,
        "threshold": inner["threshold"],
        "variants": variants,
        "training": {
            "summary": "One 3D U-Net (16-32-64-128, instance norm, leaky ReLU, deep supervision, 1.40 M parameters) "
                       "trained with modality dropout on 50 % real patches of the fold's training case (with real lesion "
                       "masks of other patients transplanted into its white matter) and 50 % SynthSeg-style synthetic "
                       "patches from that case's own tissue labels; CE (small-lesion weighted) + Dice; Adam, poly LR.",
            "shippedFold": args.fold,
            "trainCase": FOLDS[args.fold][0],
            "heldOutCase": FOLDS[args.fold][1],
            "iterations": ck["iteration"],
            "patch": meta["patch"],
            "batch": meta["batch"],
            "seed": meta["seed"],
            "lesionMaskBank": meta["bank"],
            "thresholdChoice": "maximum of mean (Dice + lesion F1) over inner-validation volumes: the training case's own "
                               "brain with 4 reserved lesion masks (" + ", ".join(inner.get("reserved", [])) + ") "
                               "transplanted; never the held-out case",
            "evaluation": tests,
            "reproduce": "bash models/training/run_all.sh",
        },
    }
    with open(os.path.join(model_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", os.path.join(model_dir, "manifest.json"))


if __name__ == "__main__":
    main()
