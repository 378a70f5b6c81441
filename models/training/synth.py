"""Training-sample generator: real-image samples (with real lesion shapes transplanted into the white matter)
and SynthSeg-style synthetic samples from the fold's own tissue labels, with MS contrast physics, random
resolution / thick slices, bias field, gamma, noise, ghosting, rotation/scale/left-right flip, modality dropout.

Everything is generated on a crop around the patch centre; normalisation statistics come from a stride-3 proxy
of the whole volume given the same intensity transforms, so crops are normalised as the service normalises a
whole volume (models/training/common.py normalize_channel).
"""
import os
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from common import CHANNELS, WORK, CLIP_PERCENTILES, FACE

LES = 7
PROXY_STRIDE = 3


class Subject:
    def __init__(self, cid):
        d = np.load(os.path.join(WORK, f"{cid}_prep.npz"))
        self.cid = cid
        self.labels = d["labels"]
        self.brain = d["brain"]
        self.lesion = d["lesion"]
        self.raw = np.stack([d[f"raw_{c}"] for c in CHANNELS]).astype(np.float32)
        self.shape = self.labels.shape
        L = self.labels
        self.means = {k: self.raw[:, L == k].mean(1) for k in (1, 2, 3, 5, 7)}
        wm = np.isin(L, (4, 5, 6, 7))
        self.allowed = ndi.binary_dilation(wm, iterations=1) & np.isin(L, (3, 4, 5, 6, 7))
        self.brain_idx = np.flatnonzero(self.brain)
        self.hardneg_idx = np.flatnonzero(np.isin(L, (6,)) | (L == 3) & (np.random.default_rng(0).random(L.shape) < 0.3))
        s = PROXY_STRIDE
        self.proxy_labels = L[::s, ::s, ::s]
        self.proxy_raw = self.raw[:, ::s, ::s, ::s]
        self.proxy_brain = self.brain[::s, ::s, ::s]
        lab, n = ndi.label(self.lesion, FACE)
        self.own_comps = [np.argwhere(lab == i + 1) for i in range(n)]


class LesionBank:
    """Real lesion masks of other patients (MNI grid) and their face-connected components."""

    def __init__(self, masks):
        self.ids = sorted(masks)
        self.masks = [masks[k] for k in self.ids]
        self.comps = []
        for m in self.masks:
            lab, n = ndi.label(m, FACE)
            objs = ndi.find_objects(lab)
            cents = []
            for i, sl in enumerate(objs):
                sub = lab[sl] == i + 1
                c = np.argwhere(sub).mean(0) + np.array([s.start for s in sl])
                cents.append(c)
            self.comps.append(np.array(cents) if cents else np.zeros((0, 3)))


def _crop(arr, lo, size, fill=0):
    """arr[..., lo:lo+size] with zero padding; arr has the 3 spatial dims last."""
    sp = arr.shape[-3:]
    out = np.full(arr.shape[:-3] + (size,) * 3, fill, dtype=arr.dtype)
    src, dst = [], []
    for a in range(3):
        s0, s1 = max(lo[a], 0), min(lo[a] + size, sp[a])
        if s1 <= s0:
            return out
        src.append(slice(s0, s1))
        dst.append(slice(s0 - lo[a], s1 - lo[a]))
    out[(Ellipsis,) + tuple(dst)] = arr[(Ellipsis,) + tuple(src)]
    return out


def _shift_flip_crop(mask, lo, size, shift, flip):
    """Crop of a bank mask that is first flipped left-right (W axis) and shifted by `shift` voxels."""
    W = mask.shape[2]
    lo2 = [lo[0] - shift[0], lo[1] - shift[1], lo[2] - shift[2]]
    if flip:
        # flipped[w] = mask[W-1-w]; crop of flipped at [lo2, lo2+size) = mask[W-1-lo2-size+1 .. W-1-lo2] reversed
        lo_f = [lo2[0], lo2[1], W - lo2[2] - size]
        return _crop(mask, lo_f, size)[:, :, ::-1]
    return _crop(mask, lo2, size)


def _bias_field(rng, shape_full, strength):
    """Smooth multiplicative field: exp of a 4x5x4 Gaussian control grid, evaluated by map_coordinates."""
    grid = rng.normal(0, strength, (4, 5, 4))
    scale = [(g - 1) / (s - 1) for g, s in zip(grid.shape, shape_full)]
    return grid, scale


def _eval_field(grid, scale, coords):
    c = [coords[a] * scale[a] for a in range(3)]
    return np.exp(ndi.map_coordinates(grid, c, order=1, mode="nearest"))


def _thick(x, axis, t, rng):
    """Simulate a 2D acquisition with slice thickness t mm along `axis` (blur, subsample, linear upsample)."""
    x = ndi.gaussian_filter1d(x, sigma=t / 2.355, axis=axis, mode="nearest")
    n = x.shape[axis]
    off = rng.uniform(0, t)
    pos = np.arange(off, n, t)
    idx = np.clip(pos, 0, n - 1)
    lowres = np.take(x, np.round(idx).astype(int), axis=axis)
    # linear interpolation back to 1 mm
    q = np.arange(n)
    j = np.clip(np.searchsorted(pos, q) - 1, 0, len(pos) - 1)
    j2 = np.clip(j + 1, 0, len(pos) - 1)
    w = np.clip((q - pos[j]) / t, 0, 1)
    shp = [1] * x.ndim
    shp[axis] = n
    w = w.reshape(shp)
    return np.take(lowres, j, axis=axis) * (1 - w) + np.take(lowres, j2, axis=axis) * w


def sample_contrast(rng):
    """Per-label means (labels 1..7) for FLAIR, T2, T1 respecting MS physics, WM ~ 0.5 scale."""
    mu = np.zeros((3, 8))
    # FLAIR
    wm = rng.uniform(0.35, 0.6)
    gm = wm + rng.uniform(0.0, 0.2)
    csf = rng.uniform(0.0, 0.25)
    les = max(wm, gm) + rng.uniform(0.12, 0.5)
    mu[0, 1:8] = [csf, csf * rng.uniform(0.8, 1.2), gm, (wm + gm) / 2 + rng.uniform(-0.05, 0.05), wm,
                  wm + rng.uniform(0.0, 0.6) * (les - wm), les]
    # T2
    wm = rng.uniform(0.2, 0.4)
    gm = wm + rng.uniform(0.05, 0.25)
    csf = rng.uniform(0.75, 1.0)
    les = wm + rng.uniform(0.15, 0.5)
    mu[1, 1:8] = [csf, csf, gm, (wm + gm) / 2, wm, wm + rng.uniform(0.0, 0.5) * (les - wm), les]
    # T1
    wm = rng.uniform(0.55, 0.9)
    gm = wm - rng.uniform(0.15, 0.35)
    csf = rng.uniform(0.0, 0.2)
    les = wm - rng.uniform(0.1, 1.2) * (wm - gm)
    mu[2, 1:8] = [csf, csf, gm, (wm + gm) / 2, wm, wm - rng.uniform(0, 0.3) * (wm - gm), les]
    return mu.astype(np.float32)


class Sampler:
    def __init__(self, subject, bank, patch=48, p_real=0.4, modality_probs=(0.5, 0.25, 0.25)):
        self.s = subject
        self.bank = bank
        self.P = patch
        self.S = int(np.ceil(patch * 1.5 / 8) * 8)
        self.p_real = p_real
        self.modality_probs = modality_probs

    # ------------------------------------------------------------------ lesions
    def _lesion_maps(self, rng, lo, transforms):
        S = self.S
        new = np.zeros((S,) * 3, bool)
        for (bi, shift, flip) in transforms:
            new |= _shift_flip_crop(self.bank.masks[bi], lo, S, shift, flip)
        allowed = _crop(self.s.allowed, lo, S)
        new &= allowed
        own = _crop(self.s.lesion, lo, S)
        return own, new & ~own

    def _centre(self, rng, transforms):
        u = rng.random()
        sh = np.array(self.s.shape)
        if u < 0.5:
            # a lesion component chosen uniformly (small lesions as often as large ones)
            cands = [c for c in self.s.own_comps]
            pts = []
            for (bi, shift, flip) in transforms:
                cs = self.bank.comps[bi]
                if len(cs):
                    cs = cs.copy()
                    if flip:
                        cs[:, 2] = sh[2] - 1 - cs[:, 2]
                    pts.append(cs + np.array(shift))
            pts = np.concatenate(pts) if pts else np.zeros((0, 3))
            n_own, n_bank = len(cands), len(pts)
            if n_own + n_bank:
                k = rng.integers(n_own + n_bank)
                c = cands[k][rng.integers(len(cands[k]))] if k < n_own else pts[k - n_own]
                return np.round(c + rng.integers(-self.P // 3, self.P // 3 + 1, 3)).astype(int)
        if u < 0.7:
            idx = self.s.hardneg_idx[rng.integers(len(self.s.hardneg_idx))]
        else:
            idx = self.s.brain_idx[rng.integers(len(self.s.brain_idx))]
        return np.array(np.unravel_index(idx, self.s.shape))

    # ------------------------------------------------------------------ one sample
    def sample(self, rng):
        s, S, P = self.s, self.S, self.P
        n_bank = rng.choice([0, 1, 1, 2]) if rng.random() < 0.5 else 1
        transforms = [(int(rng.integers(len(self.bank.masks))), tuple(rng.integers(-4, 5, 3)), bool(rng.random() < 0.5))
                      for _ in range(n_bank)]
        centre = self._centre(rng, transforms)
        lo = [int(c - S // 2) for c in centre]
        own, new = self._lesion_maps(rng, lo, transforms)
        lesion = own | new
        labels = _crop(s.labels, lo, S)
        brain = labels > 0
        real = rng.random() < self.p_real
        coords = np.stack(np.meshgrid(*[np.arange(l, l + S) for l in lo], indexing="ij")).reshape(3, -1).astype(np.float32)
        pcoords = np.stack(np.meshgrid(*[np.arange(0, n, PROXY_STRIDE) for n in s.shape], indexing="ij")).reshape(3, -1)
        pb = s.proxy_brain.ravel()
        pcoords = pcoords[:, pb].astype(np.float32)
        # lesion contrast modulation field (faint and bright lesions)
        kfield = ndi.gaussian_filter(rng.normal(0, 1, (S // 4,) * 3), 1.0)
        kfield = ndi.zoom(kfield / (kfield.std() + 1e-6), 4, order=1)[:S, :S, :S]
        kscale = rng.uniform(0.45, 1.15) * (1 + 0.25 * kfield)
        if real:
            x = _crop(s.raw, lo, S)
            proxy = s.proxy_raw[:, s.proxy_brain]
            if new.any():
                w = np.clip(ndi.gaussian_filter(new.astype(np.float32), rng.uniform(0.4, 0.8)) * 1.3, 0, 1)
                w[own] = 0
                for c in range(3):
                    wm, le = s.means[5][c], s.means[7][c]
                    target = wm + kscale * (le - wm)
                    target = target * (1 + rng.normal(0, 0.03, target.shape))
                    x[c] = x[c] * (1 - w) + target * w
        else:
            mu = sample_contrast(rng)
            sd = rng.uniform(0.01, 0.05, (3, 8)).astype(np.float32)
            lab_l = labels.copy()
            lab_l[lesion] = LES
            x = np.empty((3,) + labels.shape, np.float32)
            pl = s.proxy_labels[s.proxy_brain]
            proxy = np.empty((3, pl.size), np.float32)
            # look-alikes: bright patches of cortex / rim / ventricle (choroid-plexus-like), labelled background
            la = ndi.gaussian_filter(rng.normal(0, 1, (S // 4,) * 3), 0.7)
            la = ndi.zoom(la / (la.std() + 1e-6), 4, order=1)[:S, :S, :S] > rng.uniform(1.3, 2.2)
            la &= np.isin(lab_l, (2, 3, 6))
            for c in range(3):
                m = mu[c]
                base = m[lab_l] + sd[c][lab_l] * rng.normal(0, 1, lab_l.shape).astype(np.float32)
                if c != 2:
                    base = np.where(lesion, m[5] + kscale * (m[7] - m[5]), base)
                    base = np.where(la, base + rng.uniform(0.3, 0.8) * (m[7] - base), base)
                else:
                    base = np.where(lesion, m[5] + kscale * (m[7] - m[5]), base)
                base[~brain] = 0
                x[c] = ndi.gaussian_filter(base, rng.uniform(0.3, 1.0))
                proxy[c] = m[pl] + sd[c][pl] * rng.normal(0, 1, pl.shape)
        # ---- intensity augmentation (same transform on crop and proxy)
        for c in range(3):
            grid, scale = _bias_field(rng, s.shape, rng.uniform(0.0, 0.25))
            x[c] *= _eval_field(grid, scale, coords).reshape(x[c].shape)
            proxy[c] *= _eval_field(grid, scale, pcoords)
            ref = np.percentile(proxy[c], 99.5) + 1e-6
            g = np.exp(rng.uniform(-0.35, 0.35))
            x[c] = np.power(np.clip(x[c], 0, None) / ref, g) * ref
            proxy[c] = np.power(np.clip(proxy[c], 0, None) / ref, g) * ref
            nsd = rng.uniform(0, 0.04 if real else 0.06) * ref
            x[c] += rng.normal(0, nsd, x[c].shape).astype(np.float32)
            proxy[c] += rng.normal(0, nsd, proxy[c].shape).astype(np.float32)
        # resolution: thick 2D slices (independently per channel, as separate acquisitions)
        for c in range(3):
            if rng.random() < 0.5:
                ax = 0 if rng.random() < 0.6 else int(rng.integers(1, 3))
                x[c] = _thick(x[c], ax, rng.uniform(1.5, 5.0), rng)
            if rng.random() < 0.2:
                x[c] = ndi.gaussian_filter(x[c], rng.uniform(0.3, 0.8))
            if rng.random() < 0.15:  # ghosting: faint copy shifted along a phase-encode axis (from the proxy)
                ax = int(rng.integers(1, 3))
                shift = s.shape[ax] / 2 * (1 if rng.random() < 0.5 else -1)
                gc = coords.copy()
                gc[ax] = np.mod(gc[ax] + shift, s.shape[ax])
                pv = s.proxy_raw[c] if real else None
                if pv is not None:
                    gh = ndi.map_coordinates(pv, gc / PROXY_STRIDE, order=1, mode="nearest").reshape(x[c].shape)
                    x[c] += rng.uniform(0.03, 0.12) * gh
        # ---- normalisation (manifest rule) with proxy statistics
        xn = np.zeros_like(x)
        for c in range(3):
            lo_p, hi_p = np.percentile(proxy[c], CLIP_PERCENTILES)
            pc = np.clip(proxy[c], lo_p, hi_p)
            mean, std = pc.mean(), max(pc.std(), 1e-6)
            xn[c] = np.where(brain, (np.clip(x[c], lo_p, hi_p) - mean) / std, 0)
        # ---- spatial augmentation to the P^3 patch
        xt = torch.from_numpy(np.concatenate([xn, lesion[None].astype(np.float32), brain[None].astype(np.float32)]))[None]
        ang = rng.uniform(-0.26, 0.26, 3)
        sc = rng.uniform(0.87, 1.15, 3) if rng.random() < 0.7 else np.ones(3)
        cx, sx = np.cos(ang), np.sin(ang)
        Rx = np.array([[1, 0, 0], [0, cx[0], -sx[0]], [0, sx[0], cx[0]]])
        Ry = np.array([[cx[1], 0, sx[1]], [0, 1, 0], [-sx[1], 0, cx[1]]])
        Rz = np.array([[cx[2], -sx[2], 0], [sx[2], cx[2], 0], [0, 0, 1]])
        A = (Rx @ Ry @ Rz) * (1 / sc)[None] * (P / S)
        if rng.random() < 0.5:
            A[:, 0] *= -1  # left-right flip (W is the first coordinate in grid_sample's x,y,z)
        theta = torch.zeros(1, 3, 4)
        theta[0, :, :3] = torch.from_numpy(A.astype(np.float32))
        grid = F.affine_grid(theta, (1, 1, P, P, P), align_corners=False)
        out = F.grid_sample(xt, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        img = out[:3].numpy()
        les_p = out[3].numpy() > 0.5
        brain_p = out[4].numpy() > 0.5
        img[:, ~brain_p] = 0
        # ---- modality dropout: 0 = FLAIR+T2+T1, 1 = FLAIR+T2, 2 = FLAIR
        mode = rng.choice(3, p=self.modality_probs)
        if mode >= 1:
            img[2] = 0
        if mode == 2:
            img[1] = 0
        return img.astype(np.float32), les_p, {"real": bool(real), "mode": int(mode)}


def small_lesion_weights(les, boost=3.0, scale=30.0):
    """Voxel weights 1 + boost*exp(-size/scale) on lesion voxels (size = face-connected component volume)."""
    w = np.ones(les.shape, np.float32)
    lab, n = ndi.label(les, FACE)
    if n:
        sizes = np.bincount(lab.ravel()).astype(np.float32)
        f = 1 + boost * np.exp(-sizes / scale)
        f[0] = 1
        w = f[lab]
    return w
