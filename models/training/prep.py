"""Per-subject tissue label maps for synthesis, derived from each real training case's own images.

Labels (uint8): 0 outside brain, 1 sulcal/extra-cerebral CSF, 2 ventricles, 3 cortical GM, 4 deep GM,
5 white matter, 6 periventricular rim (WM within 2 mm of the ventricles), 7 the case's own lesions.
CSF/GM/WM come from a 3-class k-means on the case's z-scored (T1, T2) brain voxels (own lesions excluded);
ventricles are the large CSF components deep inside the brain; deep GM is GM more than 18 mm inside the brain.
No atlas is used (the MNI pveseg atlas does not line up with this grid, see shared notes).
"""
import argparse
import os
import numpy as np
from scipy import ndimage as ndi
from common import load_case, REAL_CASES, DEFAULT_SHARED, WORK, CHANNELS


def kmeans3(feats, init, iters=25):
    c = np.array(init, np.float64)
    for _ in range(iters):
        d = ((feats[:, None, :] - c[None]) ** 2).sum(-1)
        lab = d.argmin(1)
        new = np.array([feats[lab == k].mean(0) for k in range(3)])
        if np.allclose(new, c, atol=1e-4):
            break
        c = new
    return lab, c


def tissue_labels(case):
    brain, les = case["brain"], case["lesion"]
    t1, t2 = case["norm"]["T1"], case["norm"]["T2"]
    sel = brain & ~les
    feats = np.stack([t1[sel], t2[sel]], 1).astype(np.float64)
    sub = feats[:: 7]
    _, cent = kmeans3(sub, [[-2.0, 2.0], [0.0, 0.2], [0.8, -0.6]])
    d = ((feats[:, None, :] - cent[None]) ** 2).sum(-1)
    lab3 = d.argmin(1)  # 0 CSF, 1 GM, 2 WM (ordered by the init)
    labels = np.zeros(brain.shape, np.uint8)
    tmp = np.zeros(brain.shape, np.uint8)
    tmp[sel] = lab3 + 1
    dist_in = ndi.distance_transform_edt(brain)
    csf = tmp == 1
    deep_csf = csf & (dist_in > 12)
    cl, n = ndi.label(deep_csf, ndi.generate_binary_structure(3, 3))
    sizes = np.bincount(cl.ravel())
    big = np.zeros(n + 1, bool)
    big[1:] = sizes[1:] > 400
    vent = big[cl]
    vent = ndi.binary_dilation(vent, iterations=4, mask=csf)  # grow back to the ventricle walls
    labels[csf] = 1
    labels[vent] = 2
    gm = tmp == 2
    labels[gm] = 3
    labels[gm & (dist_in > 18)] = 4
    wm = (tmp == 3) | (les & brain)
    labels[tmp == 3] = 5
    rim = ndi.binary_dilation(vent, iterations=2) & (labels == 5)
    labels[rim] = 6
    labels[les & brain] = 7
    return labels, cent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    for cid in REAL_CASES:
        case = load_case(args.shared, cid)
        labels, cent = tissue_labels(case)
        counts = np.bincount(labels.ravel(), minlength=8)
        # raw-intensity tissue means (for lesion transplantation into the real image)
        means = {c: {k: float(case["raw"][c][labels == k].mean()) for k in (1, 2, 3, 5, 7)} for c in CHANNELS}
        np.savez_compressed(os.path.join(WORK, f"{cid}_prep.npz"), labels=labels,
                            **{f"raw_{c}": case["raw"][c].astype(np.float32) for c in CHANNELS},
                            lesion=case["lesion"], brain=case["brain"])
        with open(os.path.join(WORK, f"{cid}_prep.txt"), "w") as f:
            f.write(f"kmeans centres (T1z,T2z): {cent.round(3).tolist()}\nlabel counts: {counts.tolist()}\nmeans: {means}\n")
        print(cid, counts.tolist(), {c: {k: round(v, 1) for k, v in m.items()} for c, m in means.items()})


if __name__ == "__main__":
    main()
