"""Shared I/O, the manifest's normalisation, sliding-window inference and MSSEG-2016 lesion-wise metrics.

Array convention (the model contract): a NIfTI is reoriented with nibabel.as_closest_canonical (RAS) and the
array is transposed to (k, j, i) = (D, H, W). Every array in this package is in that DHW order.
"""
import os
import numpy as np
import nibabel as nib
from scipy import ndimage as ndi

CHANNELS = ("FLAIR", "T2", "T1")
CLIP_PERCENTILES = (0.5, 99.5)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_SHARED = os.path.abspath(os.path.join(REPO, "..", "shared"))
WORK = os.path.join(HERE, "work")
CKPT = os.path.join(HERE, "checkpoints")
REAL_CASES = ("patient07", "patient26")
# fold name -> (training real case, held-out test case)
FOLDS = {"A": ("patient07", "patient26"), "B": ("patient26", "patient07")}
# lesion masks kept out of training in both folds: transplanted into the fold's own training brain they form the
# inner-validation volumes on which the threshold and minimum lesion size are chosen (never the test case)
INNER_VAL_MASKS = ("patient02", "patient08", "patient17", "patient20")


def load_dhw(path, dtype=np.float32):
    """Load a NIfTI, reorient to RAS, return (array in D,H,W order, canonical nibabel image)."""
    img = nib.as_closest_canonical(nib.load(path))
    arr = np.asarray(img.dataobj, dtype=dtype)
    return np.ascontiguousarray(arr.transpose(2, 1, 0)), img


def save_dhw(arr, ref_img, path):
    """Write a D,H,W array on the canonical grid of ref_img."""
    out = nib.Nifti1Image(np.ascontiguousarray(arr.transpose(2, 1, 0)), ref_img.affine)
    out.set_qform(ref_img.affine, 1)
    out.set_sform(ref_img.affine, 1)
    nib.save(out, path)


def normalize_channel(x, brain, clip=CLIP_PERCENTILES, outside=0.0):
    """The manifest's 'zscore' normalisation, exactly as the service applies it:
    1. lo, hi = percentiles `clip` of x over brain voxels (linear interpolation, numpy default);
    2. x' = clip(x, lo, hi);
    3. mean, std of x' over brain voxels (population std);
    4. (x' - mean) / std inside the brain, `outside` elsewhere.
    """
    v = x[brain]
    lo, hi = np.percentile(v, clip)
    vc = np.clip(v, lo, hi)
    mean = float(vc.mean())
    std = float(vc.std())
    if std < 1e-6:
        std = 1.0
    out = np.full(x.shape, outside, dtype=np.float32)
    out[brain] = ((vc - mean) / std).astype(np.float32)
    return out


def norm_stats(v, clip=CLIP_PERCENTILES):
    lo, hi = np.percentile(v, clip)
    vc = np.clip(v, lo, hi)
    std = float(vc.std())
    return float(lo), float(hi), float(vc.mean()), std if std > 1e-6 else 1.0


def service_brain_mask(flair):
    """The service's brain mask of a skull-stripped FLAIR (domain/use-cases/segment-lesions.ts nonZeroBrain):
    non-zero voxels, largest face-connected component, 3-D holes filled, then 2-D holes filled in every slice
    across the slice axis (D here: isotropic volumes use the third voxel axis)."""
    m = flair != 0
    lab, n = ndi.label(m, FACE)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = lab == sizes.argmax()
    m = ndi.binary_fill_holes(m)
    for z in range(m.shape[0]):
        m[z] = ndi.binary_fill_holes(m[z])
    return m


def load_case(shared, case, brain_rule="nonzero"):
    """A cross-sectional case: dict of normalised channels (D,H,W), brain mask, lesion mask, raw channels.

    brain_rule 'nonzero' (training: FLAIR != 0) or 'service' (evaluation: the service's mask, service_brain_mask).
    """
    base = os.path.join(shared, "data", "open_ms", "cross_sectional", case)
    raw = {}
    ref = None
    for c in CHANNELS:
        raw[c], ref = load_dhw(os.path.join(base, f"{c}.nii.gz"))
    brain = raw["FLAIR"] != 0 if brain_rule == "nonzero" else service_brain_mask(raw["FLAIR"])
    les, _ = load_dhw(os.path.join(base, "lesion_mask.nii.gz"))
    norm = {c: normalize_channel(raw[c], brain) for c in CHANNELS}
    return {"raw": raw, "norm": norm, "brain": brain, "lesion": les > 0.5, "ref": ref}


def bank_masks(shared, exclude):
    """The MNI lesion masks of the other patients (real lesion shapes), excluding `exclude` (a set of ids)."""
    d = os.path.join(shared, "data", "open_ms", "cross_sectional", "mni_lesion_masks")
    out = {}
    for f in sorted(os.listdir(d)):
        pid = f.split(".")[0]
        if pid in exclude:
            continue
        m, _ = load_dhw(os.path.join(d, f))
        out[pid] = m > 0.5
    return out


# ---------------------------------------------------------------- sliding window

def gaussian_importance(patch, sigma_scale=1.0 / 8):
    """nnU-Net's Gaussian importance map (sigma = patch/8), normalised to max 1, no zeros."""
    tmp = np.zeros(patch, dtype=np.float64)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = ndi.gaussian_filter(tmp, [p * sigma_scale for p in patch], mode="constant", cval=0)
    g = g / g.max()
    g[g == 0] = g[g != 0].min()
    return g.astype(np.float32)


def tile_starts(size, patch, step):
    if size <= patch:
        return [0]
    n = int(np.ceil((size - patch) / (patch * step))) + 1
    actual = (size - patch) / (n - 1)
    return [int(round(actual * i)) for i in range(n)]


def sliding_window_probs(run_batch, x, patch, step=0.5, mirror_axes=(2,), batch_size=2):
    """Foreground probability over a C,D,H,W volume, the engine's way (domain/inference/sliding-window.ts, as
    nnU-Net v2): pad to at least the patch (floor(diff/2) before), tiles evenly spread, each tile and its mirror
    images through the network, the *logits* weighted by the Gaussian importance map and averaged over tiles and
    mirror images, then softmax. With 2 classes softmax_1 = sigmoid(l1 - l0), so the logit difference is
    accumulated. run_batch(np.ndarray [N,C,d,h,w]) -> logits [N,2,d,h,w].
    """
    import itertools
    c, *shape = x.shape
    pad = [max(0, p - s) for p, s in zip(patch, shape)]
    pads = [(0, 0)] + [(q // 2, q - q // 2) for q in pad]
    xp = np.pad(x, pads, mode="constant")
    S = xp.shape[1:]
    g = gaussian_importance(patch)
    acc = np.zeros(S, np.float64)
    wsum = np.zeros(S, np.float64)
    starts = [(a, b, cc) for a in tile_starts(S[0], patch[0], step) for b in tile_starts(S[1], patch[1], step)
              for cc in tile_starts(S[2], patch[2], step)]
    flips = [()]
    for r in range(1, len(mirror_axes) + 1):
        flips += list(itertools.combinations(mirror_axes, r))
    for i in range(0, len(starts), batch_size):
        chunk = starts[i:i + batch_size]
        xb = np.stack([xp[:, a:a + patch[0], b:b + patch[1], cc:cc + patch[2]] for a, b, cc in chunk])
        dl = np.zeros((len(chunk),) + tuple(patch), np.float64)
        for fl in flips:
            ax = tuple(f + 2 for f in fl)
            xi = np.flip(xb, ax) if fl else xb
            lg = run_batch(np.ascontiguousarray(xi))
            d = (lg[:, 1] - lg[:, 0]).astype(np.float64)
            if fl:
                d = np.flip(d, tuple(f + 1 for f in fl))
            dl += d
        dl /= len(flips)
        for k, (a, b, cc) in enumerate(chunk):
            acc[a:a + patch[0], b:b + patch[1], cc:cc + patch[2]] += dl[k] * g
            wsum[a:a + patch[0], b:b + patch[1], cc:cc + patch[2]] += g
    logit = acc / np.maximum(wsum, 1e-12)
    prob = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    sl = tuple(slice(pp[0], pp[0] + s) for pp, s in zip(pads[1:], shape))
    return prob[sl]


# ---------------------------------------------------------------- metrics (MSSEG-2016 / animaSegPerfAnalyzer)

FACE = ndi.generate_binary_structure(3, 1)


def postprocess(prob, brain, threshold, min_size_vox=0):
    """Binary mask: prob >= threshold inside the brain, face-connected components smaller than min_size_vox removed."""
    m = (prob >= threshold) & brain
    if min_size_vox > 1:
        lab, n = ndi.label(m, FACE)
        if n:
            sizes = np.bincount(lab.ravel())
            keep = sizes >= min_size_vox
            keep[0] = False
            m = keep[lab]
    return m


def _components(mask, voxel_mm3, min_lesion_mm3):
    """Face-connected components; components below floor(min/voxel)+1 voxels are dropped (anima's rule)."""
    min_vox = int(np.floor(min_lesion_mm3 / voxel_mm3)) + 1
    lab, n = ndi.label(mask, FACE)
    if n == 0:
        return lab, 0
    sizes = np.bincount(lab.ravel())
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes[1:] >= min_vox
    new_ids = np.zeros(n + 1, np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1)
    return new_ids[lab], int(keep.sum())


def _detected(stats, sizes_other, alpha, beta, gamma):
    """stats[i, j] = |A_i ∩ B_j| (row/col 0 = background). Returns a bool per A lesion (index 1..):
    A_i is detected when the B lesions cover more than alpha of it and, visiting the overlapping B lesions in
    decreasing overlap until their cumulative share of the overlap exceeds gamma, none of them lies more than
    beta outside every A lesion (|B_j ∩ A-background| / |B_j| <= beta)."""
    n_a = stats.shape[0] - 1
    out = np.zeros(n_a + 1, bool)
    for i in range(1, n_a + 1):
        row = stats[i]
        detected_vox = row[1:].sum()
        total = detected_vox + row[0]
        if total == 0 or detected_vox / total <= alpha:
            continue
        order = np.argsort(-row[1:], kind="stable") + 1
        ok = True
        cum = 0.0
        for j in order:
            if row[j] == 0:
                break
            if stats[0, j] / sizes_other[j] > beta:
                ok = False
                break
            cum += row[j] / detected_vox
            if cum > gamma:
                break
        out[i] = ok
    return out[1:]


def lesion_metrics(pred, ref, voxel_mm3=1.0, min_lesion_mm3=3.0, alpha=0.10, beta=0.70, gamma=0.65):
    """Voxel Dice, MSSEG-2016 lesion-wise detection (animaSegPerfAnalyzer rules), total volume error.

    - Dice and volumes on the binary masks as given.
    - Lesions: face (6-)connected components of each mask; components of at most `min_lesion_mm3` (3 mm^3,
      i.e. fewer than floor(3/v)+1 voxels) are dropped from that mask for the lesion-wise counts.
    - A reference lesion R is detected (recall) when predicted lesions cover > alpha (10 %) of R and the
      predicted lesions that make up the first gamma (65 %) of that overlap (largest first) each have at most
      beta (70 %) of their voxels outside every reference lesion. Precision applies the same rule with the
      roles swapped (a predicted lesion is a true positive when reference lesions cover > 10 % of it, …).
    - F1 = 2PR/(P+R); volume error % = 100 (V_pred - V_ref) / V_ref.
    """
    pred = pred.astype(bool)
    ref = ref.astype(bool)
    inter = int((pred & ref).sum())
    sp, sr = int(pred.sum()), int(ref.sum())
    dice = 2 * inter / (sp + sr) if sp + sr else 1.0
    lp, n_p = _components(pred, voxel_mm3, min_lesion_mm3)
    lr, n_r = _components(ref, voxel_mm3, min_lesion_mm3)
    stats = np.zeros((n_r + 1, n_p + 1), np.int64)
    np.add.at(stats, (lr.ravel(), lp.ravel()), 1)
    size_p = stats.sum(0)
    size_r = stats.sum(1)
    if n_r and n_p:
        det_r = _detected(stats, size_p, alpha, beta, gamma)
        det_p = _detected(stats.T.copy(), size_r, alpha, beta, gamma)
    else:
        det_r = np.zeros(n_r, bool)
        det_p = np.zeros(n_p, bool)
    recall = det_r.sum() / n_r if n_r else 0.0
    precision = det_p.sum() / n_p if n_p else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    vol_err = 100.0 * (sp - sr) / sr if sr else float("nan")
    # per reference-lesion sizes for the small-lesion analysis
    small = size_r[1:] < 20
    return {
        "dice": float(dice), "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "volumeErrorPct": float(vol_err), "predVolumeMl": sp * voxel_mm3 / 1000.0, "refVolumeMl": sr * voxel_mm3 / 1000.0,
        "refLesions": int(n_r), "predLesions": int(n_p), "tpRef": int(det_r.sum()), "tpPred": int(det_p.sum()),
        "recallSmall": float(det_r[small].mean()) if small.any() else float("nan"),
        "recallLarge": float(det_r[~small].mean()) if (~small).any() else float("nan"),
    }
