"""Train one fold. Resumable: checkpoints/<fold>_last.pt every few minutes; the data stream is seeded per
iteration (rng = default_rng([seed, fold, iteration, item])), so a resumed run sees the same samples.

  python3 train.py --fold A --iterations 3000 [--threads 1] [--shared ../shared]
"""
import argparse
import json
import os
import time
import numpy as np
import torch
import torch.nn.functional as F
from common import FOLDS, DEFAULT_SHARED, CKPT, WORK, INNER_VAL_MASKS, bank_masks
from net import UNet3D
from synth import Subject, LesionBank, Sampler, small_lesion_weights

FOLD_SEED = {"A": 11, "B": 22}


def losses(outs, target, weight):
    """CE (small-lesion weighted) + soft Dice of the lesion class, deep supervision weights 1, 0.5, 0.25."""
    total = 0.0
    wts = [1.0, 0.5, 0.25]
    for k, (o, w_ds) in enumerate(zip(outs, wts)):
        s = 2 ** k
        t = target[:, ::s, ::s, ::s]
        w = weight[:, ::s, ::s, ::s]
        ce = (F.cross_entropy(o, t, reduction="none") * w).sum() / w.sum()
        p = torch.softmax(o, 1)[:, 1]
        tf = t.float()
        inter = (p * tf).sum()
        dice = 1 - (2 * inter + 1) / (p.sum() + tf.sum() + 1)
        total = total + w_ds * (ce + dice)
    return total / sum(wts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", required=True, choices=sorted(FOLDS))
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--schedule", default="", help="poly-LR horizon changes 'it:total,...' (the horizon in force "
                    "from that iteration on); the run ends at the last total. Used when the planned length was "
                    "changed during a run, so that run_all.sh reproduces it exactly")
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--p-real", type=float, default=0.5)
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--ckpt-every-s", type=float, default=300)
    ap.add_argument("--stop-after-s", type=float, default=0, help="leave (checkpointed) after this wall-clock time")
    ap.add_argument("--stop-at", type=int, default=0, help="leave (checkpointed) at this iteration (replays a run "
                    "that --stop-after-s ended)")
    ap.add_argument("--restart-from", default="", help="checkpoint or fp16 weights file to start a new stage from: "
                    "its weights (rounded to fp16) and iteration, a fresh Adam state; ignored when <fold>_last.pt "
                    "is later (a killed stage resumes)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    horizon = [(0, args.iterations)]
    if args.schedule:
        horizon += [tuple(int(v) for v in seg.split(":")) for seg in args.schedule.split(",")]
    horizon.sort()
    args.iterations = horizon[-1][1]

    def total_at(i):
        return [t for f, t in horizon if f <= i][-1]

    import signal

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    seed = FOLD_SEED[args.fold]
    torch.manual_seed(seed)
    train_case, test_case = FOLDS[args.fold]
    # honesty: the test case's lesion mask is never loaded for this fold
    bank = LesionBank(bank_masks(args.shared, exclude={test_case, *INNER_VAL_MASKS}))
    assert test_case not in bank.ids
    subj = Subject(train_case)
    sampler = Sampler(subj, bank, patch=args.patch, p_real=args.p_real)
    net = UNet3D().to(memory_format=torch.channels_last_3d)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    os.makedirs(CKPT, exist_ok=True)
    last = os.path.join(CKPT, f"{args.fold}_last.pt")
    it = 0
    start = torch.load(args.restart_from) if args.restart_from else None
    ck = torch.load(last) if os.path.exists(last) else None
    if ck is not None and (start is None or ck["iteration"] > start["iteration"]):
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        it = ck["iteration"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at {it}", flush=True)
    elif start is not None:
        # weights rounded to fp16, as the committed checkpoints hold them (a no-op for an fp16 file), so a stage
        # started from a fresh fp32 checkpoint matches one started from its committed fp16 copy
        net.load_state_dict({k: v.half().float() for k, v in start["model"].items()})
        it = start["iteration"]
        torch.manual_seed(seed)
        print(f"new stage from {args.restart_from} at {it} (fresh optimizer state)", flush=True)
    meta = {"fold": args.fold, "train_case": train_case, "test_case": test_case, "bank": bank.ids,
            "patch": args.patch, "p_real": args.p_real, "batch": args.batch, "lr": args.lr, "iterations": args.iterations, "schedule": horizon, "seed": seed,
            "threads": args.threads, "restart_from": os.path.basename(args.restart_from) or None}
    with open(os.path.join(WORK, f"train_{args.fold}.json"), "w") as f:
        json.dump(meta, f)
    t0 = time.time()
    t_ck = time.time()
    run_loss = None

    def save(path):
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "iteration": it,
                    "torch_rng": torch.get_rng_state(), "meta": meta}, path + ".tmp")
        os.replace(path + ".tmp", path)

    while it < args.iterations:
        lr = args.lr * max(1 - it / total_at(it), 0.0) ** 0.9
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys, ws = [], [], []
        for b in range(args.batch):
            rng = np.random.default_rng([seed, it, b])
            img, les, _ = sampler.sample(rng)
            xs.append(img)
            ys.append(les)
            ws.append(small_lesion_weights(les))
        x = torch.from_numpy(np.stack(xs)).contiguous(memory_format=torch.channels_last_3d)
        y = torch.from_numpy(np.stack(ys).astype(np.int64))
        w = torch.from_numpy(np.stack(ws))
        net.train()
        outs = net.forward_ds(x)
        loss = losses(outs, y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        opt.step()
        it += 1
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if it % 25 == 0:
            el = time.time() - t0
            print(f"it {it} loss {run_loss:.4f} lr {lr:.2e} elapsed {el:.0f}s", flush=True)
        if time.time() - t_ck > args.ckpt_every_s or it == args.iterations:
            save(last)
            t_ck = time.time()
        if it % 500 == 0:
            save(os.path.join(CKPT, f"{args.fold}_it{it}.pt"))
        if stop["now"] or (args.stop_after_s and time.time() - t0 > args.stop_after_s) or it == args.stop_at:
            save(last)
            print(f"stopping at {it} (signal, time limit or --stop-at), checkpoint saved", flush=True)
            break
    save(last)
    print("done", it, flush=True)


if __name__ == "__main__":
    main()
