"""
A straightforward Python/torch reference of the service's nnU-Net-style sliding-window inference
(domain/inference/), written independently of the TypeScript code, on the same ONNX network (executed with torch
functions by onnx_torch.py). Tests compare the TypeScript result with this one to 1e-4.

Algorithm (nnU-Net v2 semantics):
  1. per-channel normalisation as the manifest says (statistics over the brain mask / non-zero voxels / all
     voxels; optional percentile clipping with numpy's linear percentiles; outside the mask set to outsideValue);
  2. crop to the bounding box of the brain mask (whole array without a mask);
  3. pad with 0 to at least the patch size (centred: floor(diff / 2) before);
  4. tile starts per axis: n = ceil((size - patch) / (step * patch)) + 1 tiles, evenly spread, the last one flush
     with the edge, rounded half-to-even as numpy does;
  5. Gaussian importance map: a delta at patch // 2 filtered with σ = patch / 8 (scipy, truncate 4), divided by
     its maximum, zeros replaced by the smallest non-zero value (or all ones without Gaussian weighting);
  6. each tile: network output averaged over the tile and its flips along every non-empty subset of the allowed
     mirror axes; logits · map added into a float32 sum, the map into a weight sum; divide at the end;
  7. softmax / sigmoid (unless the network already outputs probabilities), foreground channel, uncrop (0 outside).

  /usr/bin/python3 models/reference/sliding_window_ref.py --model M.onnx --manifest manifest.json \
      --input x.f32 --channels C --dims D H W [--mask m.u8] [--no-mirror] --out p.f32 [--logits l.f32] \
      [--timing t.json]   (threads: REF_THREADS, default 2)

Inputs and outputs are raw little-endian arrays in C order: input [C, D, H, W] float32, mask [D, H, W] uint8,
output foreground probability [D, H, W] float32, logits [K, d, h, w] float32 over the cropped region.
"""
import argparse
import resource
import time
import itertools
import json
import math
import os
import sys

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_torch import OnnxTorch  # noqa: E402


def normalise(x, brain, spec):
    method = spec['method']
    sel = spec.get('mask', 'all')
    if sel == 'brain':
        m = brain if brain is not None else np.ones(x.shape, bool)
    elif sel == 'nonzero':
        m = x != 0
    else:
        m = np.ones(x.shape, bool)
    if not m.any():
        raise ValueError('empty normalisation mask')
    x = x.astype(np.float64)
    if 'clipPercentiles' in spec:
        lo, hi = np.percentile(x[m], spec['clipPercentiles'])
        x = np.clip(x, lo, hi)
    if method == 'zscore':
        v = x[m]
        y = (x - v.mean()) / max(v.std(), 1e-8)
    elif method == 'minmax':
        v = x[m]
        y = np.clip((x - v.min()) / max(v.max() - v.min(), 1e-8), 0, 1)
    elif method == 'fixed':
        if 'clipValues' in spec:
            x = np.clip(x, spec['clipValues'][0], spec['clipValues'][1])
        y = (x - spec.get('mean', 0.0)) / spec.get('std', 1.0)
    elif method == 'none':
        y = x
    else:
        raise ValueError(method)
    if sel != 'all':
        y[~m] = spec.get('outsideValue', 0.0)
    return y.astype(np.float32)


def steps(size, patch, step):
    target = patch * step
    n = int(math.ceil((size - patch) / target)) + 1
    if n == 1:
        return [0]
    actual = (size - patch) / (n - 1)
    return [int(np.round(actual * i)) for i in range(n)]


def gaussian_map(patch, use):
    if not use:
        return np.ones(patch, np.float32)
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode='constant', cval=0)
    g = g / g.max()
    g = g.astype(np.float32)
    g[g == 0] = g[g != 0].min()
    return g


def run(args):
    manifest = json.load(open(args.manifest))
    inf = manifest['inference']
    patch = tuple(inf['patchSize'])
    dims = tuple(args.dims)
    x = np.fromfile(args.input, '<f4').reshape((args.channels,) + dims)
    brain = np.fromfile(args.mask, np.uint8).reshape(dims) > 0 if args.mask else None
    variant = next(v for v in manifest['variants'] if os.path.basename(args.model) == v['file'])
    t0 = time.perf_counter()
    x = np.stack([normalise(x[c], brain, manifest['normalization'][name])
                  for c, name in enumerate(variant['channels'])])
    if brain is not None:
        nz = np.nonzero(brain)
        lo = [int(a.min()) for a in nz]
        hi = [int(a.max()) + 1 for a in nz]
    else:
        lo, hi = [0, 0, 0], list(dims)
    xc = x[:, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    crop = xc.shape[1:]
    pad_lo = [max(0, p - s) // 2 for p, s in zip(patch, crop)]
    pad_hi = [max(0, p - s) - b for p, s, b in zip(patch, crop, pad_lo)]
    xp = np.pad(xc, [(0, 0)] + list(zip(pad_lo, pad_hi)), constant_values=0)
    shape = xp.shape[1:]
    net = OnnxTorch(args.model)
    g = torch.from_numpy(gaussian_map(patch, inf['gaussian']))
    k = len(manifest['output']['labels'])
    acc = torch.zeros((k,) + shape, dtype=torch.float32)
    wsum = torch.zeros(shape, dtype=torch.float32)
    xt = torch.from_numpy(xp)
    mirror = [] if args.no_mirror else [a + 2 for a in inf['mirrorAxes']]
    combos = [c for r in range(1, len(mirror) + 1) for c in itertools.combinations(mirror, r)]
    n_tiles = 0
    for sd in steps(shape[0], patch[0], inf['tileStep']):
        for sh in steps(shape[1], patch[1], inf['tileStep']):
            for sw in steps(shape[2], patch[2], inf['tileStep']):
                sl = (slice(sd, sd + patch[0]), slice(sh, sh + patch[1]), slice(sw, sw + patch[2]))
                n_tiles += 1
                tile = xt[(slice(None),) + sl][None]
                pred = net(tile)
                for axes in combos:
                    pred = pred + torch.flip(net(torch.flip(tile, axes)), axes)
                pred = pred / (len(combos) + 1)
                acc[(slice(None),) + sl] += pred[0] * g
                wsum[sl] += g
    logits = acc / wsum
    seconds = time.perf_counter() - t0
    logits = logits[:, pad_lo[0]:pad_lo[0] + crop[0], pad_lo[1]:pad_lo[1] + crop[1], pad_lo[2]:pad_lo[2] + crop[2]]
    out = manifest['output']
    if out['kind'] == 'probabilities':
        probs = logits
    elif out['activation'] == 'softmax':
        probs = torch.softmax(logits, 0)
    else:
        probs = torch.sigmoid(logits)
    fg = np.zeros(dims, np.float32)
    fg[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = probs[manifest['foregroundLabel']].numpy()
    fg.astype('<f4').tofile(args.out)
    if args.logits:
        logits.numpy().astype('<f4').tofile(args.logits)
    if args.timing:
        with open(args.timing, 'w') as f:
            json.dump({'seconds': seconds, 'tiles': n_tiles, 'networkCalls': n_tiles * (len(combos) + 1),
                       'peakRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       'threads': torch.get_num_threads(), 'torch': torch.__version__}, f)


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('REF_THREADS', '2')))
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--manifest', required=True)
    ap.add_argument('--input', required=True)
    ap.add_argument('--channels', type=int, required=True)
    ap.add_argument('--dims', type=int, nargs=3, required=True)
    ap.add_argument('--mask')
    ap.add_argument('--no-mirror', action='store_true')
    ap.add_argument('--out', required=True)
    ap.add_argument('--logits')
    ap.add_argument('--timing', help='write {seconds, peakRssMiB, …} of normalisation + sliding window here')
    run(ap.parse_args())
