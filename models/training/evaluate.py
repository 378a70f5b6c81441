"""Inference (sliding window, as the engine does it), inner-validation threshold choice, held-out evaluation.

  python3 evaluate.py --fold A inner      # choose the threshold on the fold's own training brain (never the test case)
  python3 evaluate.py --fold A test       # evaluate the fold's checkpoint on its held-out case, all 3 variants
"""
import argparse
import json
import os
import time
import numpy as np
import torch
from scipy import ndimage as ndi
from common import (FOLDS, DEFAULT_SHARED, CKPT, WORK, CHANNELS, INNER_VAL_MASKS, load_case, bank_masks,
                    normalize_channel, sliding_window_probs, lesion_metrics, save_dhw, service_brain_mask)
from net import UNet3D
from synth import Subject

VARIANTS = {"flair-t2-t1": ("FLAIR", "T2", "T1"), "flair-t2": ("FLAIR", "T2"), "flair": ("FLAIR",)}
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def load_net(path):
    ck = torch.load(path, map_location="cpu")
    net = UNet3D()
    net.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    net.eval()
    return net, ck


def predict(net, norm, brain, channels, patch, mirror_axes=(2,), crop=True, batch_size=2):
    """norm: dict channel -> normalised D,H,W array. Missing channels are zeros (as the variant wrappers do)."""
    x = np.stack([norm[c] if c in channels else np.zeros_like(norm["FLAIR"]) for c in CHANNELS]).astype(np.float32)
    sl = tuple(slice(None) for _ in range(3))
    if crop:  # the brain's bounding box, no margin: exactly what the engine does (domain/inference/predict.ts)
        nz = np.argwhere(brain)
        lo = nz.min(0)
        hi = nz.max(0) + 1
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))

    def run(xb):
        with torch.no_grad():
            return net(torch.from_numpy(xb)).numpy()

    prob = np.zeros(brain.shape, np.float32)
    prob[sl] = sliding_window_probs(run, x[(slice(None),) + sl], (patch,) * 3, 0.5, mirror_axes, batch_size)
    return prob


def inner_val_volumes(fold, shared, seed=7):
    """The fold's own training brain with each reserved lesion mask transplanted (same procedure as training)."""
    train_case, _ = FOLDS[fold]
    s = Subject(train_case)
    masks = bank_masks(shared, exclude=set())
    vols = []
    groups = [INNER_VAL_MASKS[0::2], INNER_VAL_MASKS[1::2]]
    for i, grp in enumerate(groups):
        pid = "+".join(grp)
        rng = np.random.default_rng([seed, i])
        new = np.logical_or.reduce([masks[g] for g in grp]) & s.allowed & ~s.lesion
        w = np.clip(ndi.gaussian_filter(new.astype(np.float32), 0.6) * 1.3, 0, 1)
        w[s.lesion] = 0
        field = ndi.zoom(ndi.gaussian_filter(rng.normal(0, 1, [n // 4 + 1 for n in s.shape]), 1.0), 4, order=1)
        field = field[: s.shape[0], : s.shape[1], : s.shape[2]]
        k = 0.8 * (1 + 0.25 * field / (field.std() + 1e-6))
        raw = s.raw.copy()
        for c in range(3):
            wm, le = s.means[5][c], s.means[7][c]
            raw[c] = raw[c] * (1 - w) + (wm + k * (le - wm)) * w
        brain = service_brain_mask(raw[0])
        norm = {c: normalize_channel(raw[ci], brain) for ci, c in enumerate(CHANNELS)}
        vols.append({"id": f"{train_case}+{pid}", "norm": norm, "brain": brain, "ref": s.lesion | new})
    return vols


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", required=True, choices=sorted(FOLDS))
    ap.add_argument("what", choices=["inner", "test"])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default=None, help="default: all three for test, flair-t2-t1 for inner")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = args.ckpt or os.path.join(CKPT, f"{args.fold}_last.pt")
    net, ck = load_net(ckpt)
    patch = ck["meta"]["patch"]
    it = ck["iteration"]
    train_case, test_case = FOLDS[args.fold]
    out = {"fold": args.fold, "checkpoint": os.path.basename(ckpt), "iteration": it, "patch": patch}
    if args.what == "inner":
        vols = inner_val_volumes(args.fold, args.shared)
        table = {}
        for vname in (args.variants or "flair-t2-t1").split(","):
            chans = VARIANTS[vname]
            probs = []
            for v in vols:
                t = time.time()
                probs.append(predict(net, v["norm"], v["brain"], chans, patch))
                print(vname, v["id"], f"{time.time() - t:.0f}s", flush=True)
            rows = {}
            for th in THRESHOLDS:
                ms = [lesion_metrics(p >= th, v["ref"]) for p, v in zip(probs, vols)]
                rows[th] = {k: float(np.mean([m[k] for m in ms])) for k in ("dice", "precision", "recall", "f1", "volumeErrorPct")}
                rows[th]["score"] = rows[th]["dice"] + rows[th]["f1"]
            best = max(rows, key=lambda t: rows[t]["score"])
            table[vname] = {"rows": rows, "best": best}
            print(vname, "best threshold", best, rows[best], flush=True)
        out["inner"] = table
        out["reserved"] = list(INNER_VAL_MASKS)
        # one threshold for the manifest: chosen on the full (FLAIR+T2+T1) variant
        out["threshold"] = table[(args.variants or "flair-t2-t1").split(",")[0]]["best"]
        path = os.path.join(WORK, f"inner_{args.fold}{args.tag}.json")
    else:
        inner_path = os.path.join(WORK, f"inner_{args.fold}{args.tag}.json")
        with open(inner_path) as f:
            th = json.load(f)["threshold"]
        case = load_case(args.shared, test_case, brain_rule="service")
        res = {}
        for vname in (args.variants or ",".join(VARIANTS)).split(","):
            t = time.time()
            prob = predict(net, case["norm"], case["brain"], VARIANTS[vname], patch)
            el = time.time() - t
            m = lesion_metrics(prob >= th, case["lesion"])
            m["seconds"] = el
            res[vname] = m
            save_dhw((prob * 1000).astype(np.int16), case["ref"], os.path.join(WORK, f"prob_{args.fold}_{test_case}_{vname}{args.tag}.nii.gz"))
            print(vname, test_case, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()}), flush=True)
        out.update({"test_case": test_case, "threshold": th, "results": res})
        path = os.path.join(WORK, f"test_{args.fold}{args.tag}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
