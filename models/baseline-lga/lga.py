"""Classical MS lesion baseline in the spirit of LST-LGA (Schmidt et al. 2012): FLAIR hyperintensity outliers
inside the white matter, grown into neighbouring tissue.

1. White matter: 3-class k-means (CSF/GM/WM) of the z-scored T1 inside the brain (FLAIR-only: of the FLAIR).
2. FLAIR belief:
   r = G_0.5mm * FLAIR / median_WM(FLAIR): relative hyperintensity (light Gaussian smoothing, sigma 0.5 voxel) (N4-corrected input; on the two real cases lesions average
   r = 1.34-1.37).
3. Search region: the WM class closed by 3 voxels (so T1-hypointense lesions are inside), at least 3 mm from the
   brain surface, not CSF. Seeds: r > kappa in the region; lesions = face-connected regions of r > kappa - 0.12 within
   one voxel of the region that contain a seed; components under 4 voxels (<= 3 mm^3) dropped.
kappa is chosen by cross-validation over the two real cases: for each case, the kappa that maximises
Dice + lesion F1 on the *other* case (never on the case being reported).

  python3 models/baseline-lga/lga.py [--shared ../shared]
"""
import argparse
import json
import os
import sys
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
from common import DEFAULT_SHARED, REAL_CASES, load_case, lesion_metrics, FACE  # noqa: E402

KAPPAS = (1.3, 1.35, 1.4, 1.45, 1.5, 1.55, 1.6, 1.7, 1.8)


def kmeans1d(v, init, iters=30):
    c = np.array(init, float)
    for _ in range(iters):
        lab = np.abs(v[:, None] - c[None]).argmin(1)
        new = np.array([v[lab == k].mean() for k in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    return c


def tissue(case, use_t1=True):
    brain = case["brain"]
    x = case["norm"]["T1" if use_t1 else "FLAIR"]
    v = x[brain]
    init = np.percentile(v, [5, 40, 80]) if use_t1 else np.percentile(v, [3, 60, 40])
    c = kmeans1d(v[::5], init)
    lab = np.zeros(brain.shape, np.uint8)
    lab[brain] = np.abs(v[:, None] - c[None]).argmin(1) + 1
    if not use_t1:
        # FLAIR: CSF darkest, then WM, GM brighter than WM
        order = np.argsort(c)  # ascending: CSF, WM, GM
        remap = np.zeros(4, np.uint8)
        remap[order[0] + 1], remap[order[1] + 1], remap[order[2] + 1] = 1, 3, 2
        lab = remap[lab]
    return lab  # 1 CSF, 2 GM, 3 WM


def belief(case, use_t1=True):
    """FLAIR outlier score relative to grey matter, and the white-matter search region."""
    lab = tissue(case, use_t1)
    brain = case["brain"]
    flair = case["raw"]["FLAIR"]
    z = ndi.gaussian_filter(flair, 0.5) / np.median(flair[lab == 3])
    # white matter with its lesions (T1-hypointense lesions fall into the GM class): closed, away from the
    # brain surface (cortex) and off the CSF
    wm = ndi.binary_closing(lab == 3, iterations=3) & brain
    inner = ndi.binary_erosion(brain, iterations=3)
    region = wm & inner & (lab != 1)
    return z, region


def segment_from(z, region, kappa):
    seeds = (z > kappa) & region
    grow = (z > kappa - 0.12) & ndi.binary_dilation(region, iterations=1)
    cl, n = ndi.label(grow, FACE)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(cl[seeds])] = True
    keep[0] = False
    m = keep[cl]
    cl, n = ndi.label(m, FACE)
    sizes = np.bincount(cl.ravel())
    ok = sizes >= 4
    ok[0] = False
    return ok[cl]


def segment(case, kappa, use_t1=True):
    z, region = belief(case, use_t1)
    return segment_from(z, region, kappa)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--save-dir", default=None, help="also write the chosen masks as NIfTI here")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json"))
    args = ap.parse_args()
    cases = {c: load_case(args.shared, c) for c in REAL_CASES}
    out = {}
    for use_t1, name in ((True, "flair+t1"), (False, "flair")):
        grid = {}
        for c in cases:
            z, region = belief(cases[c], use_t1)
            grid[c] = {k: lesion_metrics(segment_from(z, region, k), cases[c]["lesion"]) for k in KAPPAS}
        res = {}
        for c in cases:
            other = [o for o in cases if o != c][0]
            k_best = max(KAPPAS, key=lambda k: grid[other][k]["dice"] + grid[other][k]["f1"])
            m = grid[c][k_best]
            res[c] = {"kappa": k_best, "chosenOn": other, **{k: round(m[k], 4) for k in
                      ("dice", "precision", "recall", "f1", "volumeErrorPct", "predVolumeMl", "refVolumeMl")}}
            print(name, c, res[c], flush=True)
            if args.save_dir:
                from common import save_dhw
                z, region = belief(cases[c], use_t1)
                os.makedirs(args.save_dir, exist_ok=True)
                save_dhw(segment_from(z, region, k_best).astype(np.uint8), cases[c]["ref"],
                         os.path.join(args.save_dir, f"lga_{name}_{c}.nii.gz"))
        out[name] = {"results": res, "grid": {c: {str(k): {q: round(v, 4) for q, v in m.items()} for k, m in g.items()} for c, g in grid.items()}}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
