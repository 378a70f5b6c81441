"""Overlay figures for the model card: FLAIR slices with reference (green) and prediction (red) outlines.

  python3 figures.py   (uses work/prob_<fold>_<case>_<variant>.nii.gz and work/test_<fold>.json)
"""
import glob
import json
import os
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import DEFAULT_SHARED, WORK, FOLDS, REPO, load_dhw, load_case  # noqa: E402

FIG = os.path.join(REPO, "models", "mslesion-unet3d-v1", "figures")


def overlay(ax, img, ref, pred, title):
    ax.imshow(img, cmap="gray", origin="lower", vmin=-2.5, vmax=4.5, interpolation="nearest")
    if ref is not None and ref.any():
        ax.contour(ref, levels=[0.5], colors=["#00e000"], linewidths=0.7)
    if pred.any():
        ax.contour(pred, levels=[0.5], colors=["#ff2020"], linewidths=0.7)
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def case_figure(fold, variant="flair-t2-t1", shared=DEFAULT_SHARED, tag=""):
    _, case_id = FOLDS[fold]
    with open(os.path.join(WORK, f"test_{fold}{tag}.json")) as f:
        t = json.load(f)
    th = t["threshold"]
    case = load_case(shared, case_id)
    prob, _ = load_dhw(os.path.join(WORK, f"prob_{fold}_{case_id}_{variant}{tag}.nii.gz"))
    pred = prob / 1000.0 >= th
    ref = case["lesion"]
    flair = case["norm"]["FLAIR"]
    zs = np.argsort(-ref.sum((1, 2)))
    picks = []
    for z in zs:
        if all(abs(z - p) > 8 for p in picks):
            picks.append(int(z))
        if len(picks) == 4:
            break
    picks.sort()
    fig, axs = plt.subplots(1, 4, figsize=(8, 2.6), dpi=90)
    for ax, z in zip(axs, picks):
        # axial slice z; rows = H (anterior up after origin='lower'), cols = W (patient right on the right: RAS)
        overlay(ax, flair[z], ref[z], pred[z], f"z={z}")
    m = t["results"][variant]
    fig.suptitle(f"{case_id}, fold {fold} ({variant}, never trained on this case): Dice {m['dice']:.2f}, "
                 f"lesion F1 {m['f1']:.2f}. green = reference, red = model", fontsize=7)
    plt.tight_layout()
    os.makedirs(FIG, exist_ok=True)
    path = os.path.join(FIG, f"{case_id}_fold{fold}_{variant}.png")
    plt.savefig(path)
    plt.close(fig)
    return path


def longitudinal_figure(fold="A", tag=""):
    with open(os.path.join(WORK, f"longitudinal_{fold}{tag}.json")) as f:
        t = json.load(f)
    th = t["threshold"]
    keys = list(t["exams"])
    fig, axs = plt.subplots(1, len(keys), figsize=(2.2 * len(keys), 2.6), dpi=90)
    for ax, k in zip(axs, keys):
        pid, study = k.split("/")
        prob = np.load(os.path.join(WORK, f"long_{pid}_{study}_prob.npy")) / 255.0
        fl = np.load(os.path.join(WORK, f"long_{pid}_{study}_flair.npy")).astype(np.float32)
        pred = prob >= th
        z = int(np.argmax(pred.sum((1, 2)))) if pred.any() else fl.shape[0] // 2
        overlay(ax, fl[z], None, pred[z], f"{k} FLAIR-only: {t['exams'][k]['flair']['volumeMl']:.1f} mL")
    fig.suptitle("Raw 2D clinical FLAIRs (never trained on), model outline in red", fontsize=7)
    plt.tight_layout()
    path = os.path.join(FIG, f"longitudinal_fold{fold}.png")
    plt.savefig(path)
    plt.close(fig)
    return path


def training_curve(fold="A"):
    """Running training loss (and learning rate) from the fold's training logs, stages concatenated."""
    pts = []
    for path in sorted(glob.glob(os.path.join(WORK, f"train_{fold}.log")) + glob.glob(os.path.join(WORK, f"train_{fold}_*.log"))):
        with open(path) as f:
            rows = [w for w in (line.split() for line in f) if len(w) >= 6 and w[0] == "it" and w[2] == "loss"]
        # the running mean (decay 0.98) starts from one batch's loss: skip its first 100 iterations per stage
        pts += [(int(w[1]), float(w[3]), float(w[5])) for w in rows[4:]]
    if not pts:
        return None
    pts.sort()
    it, loss, lr = (np.array(v) for v in zip(*pts))
    fig, ax = plt.subplots(figsize=(5, 2.4), dpi=90)
    ax.plot(it, loss, color="#c02020", linewidth=0.8)
    ax.set_xlabel("iteration", fontsize=7)
    ax.set_ylabel("running loss (CE + Dice)", fontsize=7, color="#c02020")
    ax.tick_params(labelsize=6)
    ax2 = ax.twinx()
    ax2.plot(it, lr, color="#2050c0", linewidth=0.8)
    ax2.set_ylabel("learning rate", fontsize=7, color="#2050c0")
    ax2.tick_params(labelsize=6)
    ax.set_title(f"fold {fold} training loss and learning rate (stages whose logs were kept)", fontsize=7)
    plt.tight_layout()
    path = os.path.join(FIG, f"training_fold{fold}.png")
    plt.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    import sys
    tag = sys.argv[1] if len(sys.argv) > 1 else ""
    for fold in FOLDS:
        if os.path.exists(os.path.join(WORK, f"test_{fold}{tag}.json")):
            print(case_figure(fold, tag=tag))
    if os.path.exists(os.path.join(WORK, f"longitudinal_A{tag}.json")):
        print(longitudinal_figure("A", tag))
    print(training_curve("A"))
