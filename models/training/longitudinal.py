"""No-collapse check on the raw 2D clinical exams of the longitudinal patients (never trained on).

Per exam: raw FLAIR (0.57-0.72 mm in plane, 3-4 mm slices, not skull-stripped); brain mask = the dataset's
common-space brain mask mapped onto the FLAIR grid through studyN_FLAIR_to_common_space.txt (ITK convention:
the file maps common-space points to FLAIR points; checked on the data); T2W/T1W onto the FLAIR grid through
their intra-study transforms. Then as the service does: RAS, 1 mm (linear; mask nearest), the manifest
normalisation, sliding window, threshold. Reported: lesion volume and count per exam and variant, and how many
of the ground-truth *new/enlarged* lesions (gt.nii.gz, common space) the exam-2 prediction covers.

  python3 longitudinal.py --fold A [--ckpt ...]
"""
import argparse
import json
import os
import numpy as np
import nibabel as nib
import torch
from scipy import ndimage as ndi
from common import DEFAULT_SHARED, CKPT, WORK, CHANNELS, normalize_channel, FACE
from evaluate import load_net, predict
from itk_io import read_itk_affine, resample

PATIENTS = ("patient01", "patient03")


def one_mm_grid(img):
    """Canonical (RAS) grid of img resampled to 1 mm, same first-voxel centre."""
    can = nib.as_closest_canonical(img)
    zooms = np.array(can.header.get_zooms()[:3])
    shape = tuple(int(np.floor((n - 1) * z)) + 1 for n, z in zip(can.shape[:3], zooms))
    aff = can.affine.copy()
    aff[:3, :3] = can.affine[:3, :3] / zooms[None]
    return aff, shape


def exam_inputs(base, study):
    fl = nib.load(os.path.join(base, f"{study}_FLAIR.nii.gz"))
    bm = nib.load(os.path.join(base, "brainmask_common_space.nii.gz"))
    m_common = read_itk_affine(os.path.join(base, f"{study}_FLAIR_to_common_space.txt"))  # common -> FLAIR
    aff, shape = one_mm_grid(fl)
    flair_to_common = np.linalg.inv(m_common)
    vols = {"FLAIR": resample(fl, aff, shape)}
    brain = resample(bm, aff, shape, flair_to_common, order=0) > 0.5
    for c, name in (("T2", "T2W"), ("T1", "T1W")):
        p = os.path.join(base, f"{study}_{name}.nii.gz")
        if os.path.exists(p):
            m = read_itk_affine(os.path.join(base, f"{study}_{name}_intrastudy_to_FLAIR.txt"))  # FLAIR -> T2W/T1W
            vols[c] = resample(nib.load(p), aff, shape, m)
    # as arrays in D,H,W order
    brain = brain.transpose(2, 1, 0).copy()
    norm = {c: normalize_channel(v.transpose(2, 1, 0).copy(), brain) for c, v in vols.items()}
    return norm, brain, aff, shape, m_common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", default="A")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, ck = load_net(args.ckpt or os.path.join(CKPT, f"{args.fold}_last.pt"))
    th = args.threshold
    if th is None:
        with open(os.path.join(WORK, f"inner_{args.fold}{args.tag}.json")) as f:
            th = json.load(f)["threshold"]
    patch = ck["meta"]["patch"]
    out = {"fold": args.fold, "iteration": ck["iteration"], "threshold": th, "exams": {}}
    for pid in PATIENTS:
        base = os.path.join(args.shared, "data", "open_ms", "longitudinal", pid)
        gt_img = nib.load(os.path.join(base, "gt.nii.gz"))
        for study in ("study1", "study2"):
            norm, brain, aff, shape, m_common = exam_inputs(base, study)
            avail = tuple(c for c in CHANNELS if c in norm)
            variants = {"flair": ("FLAIR",)}
            if len(avail) > 1:
                variants["-".join(a.lower() for a in avail)] = avail
            res = {}
            for vname, chans in variants.items():
                prob = predict(net, norm, brain, chans, patch)
                m = (prob >= th) & brain
                lab, n = ndi.label(m, FACE)
                sizes = np.bincount(lab.ravel())[1:]
                r = {"volumeMl": float(m.sum()) / 1000.0, "lesions": int((sizes >= 4).sum()),
                     "brainVolumeMl": float(brain.sum()) / 1000.0}
                if study == "study2":
                    # gt (new/enlarged lesions, common space) onto this 1 mm grid
                    gt = resample(gt_img, aff, shape, np.linalg.inv(m_common), order=0).transpose(2, 1, 0) > 0.5
                    gl, gn = ndi.label(gt, FACE)
                    hit = 0
                    for i in range(1, gn + 1):
                        comp = gl == i
                        if (m & comp).sum() > 0.1 * comp.sum():
                            hit += 1
                    r["gtNewLesions"] = int(gn)
                    r["gtNewLesionsCovered"] = int(hit)
                res[vname] = r
                print(pid, study, vname, r, flush=True)
                if vname == "flair":
                    np.save(os.path.join(WORK, f"long_{pid}_{study}_prob.npy"), (prob * 255).astype(np.uint8))
                    np.save(os.path.join(WORK, f"long_{pid}_{study}_flair.npy"), norm["FLAIR"].astype(np.float16))
            out["exams"][f"{pid}/{study}"] = res
    path = os.path.join(WORK, f"longitudinal_{args.fold}{args.tag}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
