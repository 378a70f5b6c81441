"""
Rebuilds a brainchop MeshNet TensorFlow.js *layers* model (model.json topology + float32 weight shards) in torch,
checks it against an independent NumPy re-implementation of the tfjs forward pass, and exports ONNX (opset 17).

Layer semantics reproduced from brainchop (neuroneural/brainchop, MIT), read from its inference code:
- Conv3D, 'same' padding (= dilation on each side for k=3), stride 1, channels-last in tfjs;
- a Conv3D whose name ends in '_gn' is followed by brainchop's LayerNormInPlace: tf.moments over the spatial axes
  per channel (population variance), (x - mean) / sqrt(var + 1e-5), no affine — i.e. InstanceNorm3d(affine=False);
- Activation layers: 'gelu' (exact, erf form, as tfjs-layers), 'elu' (alpha 1), 'relu', 'linear';
- the last Conv3D (1x1x1, bias) gives per-class logits; brainchop takes the argmax.
The ONNX model is channels-first: input [N, 1, D, H, W] -> logits [N, classes, D, H, W] with D, H, W the tfjs
tensor's axes 1..3 (after brainchop's transpose, D = the conformed volume's first voxel axis i, see MODEL_CARD.md),
and dynamic spatial sizes (brainchop crops the conformed volume to the head before inference).

Usage: python3 tfjs_meshnet.py is a library; see convert.py in each model folder.
"""
import json
import math
import os

import numpy as np
import torch
from torch import nn

torch.set_num_threads(2)


def load_tfjs(folder):
    with open(os.path.join(folder, 'model.json')) as f:
        spec = json.load(f)
    topo = spec['modelTopology']
    cfg = topo['model_config']['config'] if 'model_config' in topo else topo['config']
    layers = cfg['layers']
    weights = {}
    for group in spec['weightsManifest']:
        blob = b''.join(open(os.path.join(folder, p), 'rb').read() for p in group['paths'])
        offset = 0
        for w in group['weights']:
            if w['dtype'] != 'float32':
                raise ValueError(f"unsupported weight dtype {w['dtype']}")
            n = int(np.prod(w['shape']))
            weights[w['name']] = np.frombuffer(blob, dtype='<f4', count=n, offset=offset).reshape(w['shape']).copy()
            offset += 4 * n
        if offset != len(blob):
            raise ValueError(f'weight shards hold {len(blob)} bytes, manifest describes {offset}')
    # a simple chain: each layer's single inbound node is the previous layer
    chain = []
    prev = None
    for layer in layers:
        cls = layer['class_name']
        c = layer['config']
        inbound = layer.get('inbound_nodes') or []
        src = inbound[0][0][0] if inbound else None
        if prev is not None and src != prev:
            raise ValueError(f"layer {c['name']} does not follow {prev}: not a sequential MeshNet")
        prev = c['name']
        if cls == 'InputLayer':
            chain.append({'type': 'input', 'shape': c['batch_input_shape']})
        elif cls == 'Conv3D':
            if c.get('data_format', 'channels_last') != 'channels_last':
                raise ValueError('only channels_last Conv3D is supported')
            if any(s != 1 for s in c['strides']) or c['padding'] != 'same':
                raise ValueError('only stride-1 same-padded Conv3D is supported')
            k = weights[c['name'] + '/kernel']
            b = weights.get(c['name'] + '/bias') if c['use_bias'] else None
            chain.append({'type': 'conv', 'name': c['name'], 'kernel': k, 'bias': b,
                          'dilation': list(c['dilation_rate']), 'norm': c['name'].endswith('_gn')})
            if c.get('activation', 'linear') != 'linear':
                chain.append({'type': 'act', 'fn': c['activation']})
        elif cls == 'Activation':
            chain.append({'type': 'act', 'fn': c['activation']})
        else:
            raise ValueError(f'unsupported layer {cls}')
    return chain


ACTS = {'gelu', 'elu', 'relu', 'linear'}


class MeshNet(nn.Module):
    def __init__(self, chain):
        super().__init__()
        mods = []
        for item in chain:
            if item['type'] == 'conv':
                k = item['kernel']  # [kd, kh, kw, cin, cout]
                kd, kh, kw, cin, cout = k.shape
                dil = item['dilation']
                pad = [dil[a] * (k.shape[a] - 1) // 2 for a in range(3)]
                conv = nn.Conv3d(cin, cout, (kd, kh, kw), padding=pad, dilation=dil, bias=item['bias'] is not None)
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.transpose(4, 3, 0, 1, 2))))
                    if item['bias'] is not None:
                        conv.bias.copy_(torch.from_numpy(item['bias']))
                mods.append(conv)
                if item['norm']:
                    mods.append(nn.InstanceNorm3d(cout, eps=1e-5, affine=False, track_running_stats=False))
            elif item['type'] == 'act':
                fn = item['fn']
                if fn not in ACTS:
                    raise ValueError(f'unsupported activation {fn}')
                if fn == 'gelu':
                    mods.append(nn.GELU())  # exact erf form, as tfjs-layers' 'gelu'
                elif fn == 'elu':
                    mods.append(nn.ELU(alpha=1.0))
                elif fn == 'relu':
                    mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


def numpy_forward(chain, x):
    """Independent tfjs-semantics forward pass, channels-last. x: [D, H, W] float32 -> logits [D, H, W, C]."""
    from scipy.special import erf
    h = x.astype(np.float64)[..., None]
    for item in chain:
        if item['type'] == 'conv':
            k = item['kernel'].astype(np.float64)
            dil = item['dilation']
            kd, kh, kw, cin, cout = k.shape
            pads = [dil[a] * (k.shape[a] - 1) // 2 for a in range(3)]
            padded = np.pad(h, [(pads[0], pads[0]), (pads[1], pads[1]), (pads[2], pads[2]), (0, 0)])
            D, H, W = h.shape[:3]
            out = np.zeros((D, H, W, cout))
            for a in range(kd):
                for b in range(kh):
                    for c in range(kw):
                        view = padded[a * dil[0]:a * dil[0] + D, b * dil[1]:b * dil[1] + H, c * dil[2]:c * dil[2] + W]
                        out += view @ k[a, b, c]
            if item['bias'] is not None:
                out += item['bias']
            if item['norm']:
                mean = out.mean(axis=(0, 1, 2), keepdims=True)
                var = ((out - mean) ** 2).mean(axis=(0, 1, 2), keepdims=True)
                out = (out - mean) / np.sqrt(var + 1e-5)
            h = out
        elif item['type'] == 'act':
            fn = item['fn']
            if fn == 'gelu':
                h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            elif fn == 'elu':
                h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
            elif fn == 'relu':
                h = np.maximum(h, 0)
    return h


def torch_forward(model, x):
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
        return model(t)[0].permute(1, 2, 3, 0).numpy()


def reference_input(shape):
    """Deterministic smooth test input in [0, 1], also generated by the Node test (same formula)."""
    D, H, W = shape
    d, h, w = np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing='ij')
    v = 0.5 + 0.25 * np.sin(0.37 * d + 0.11 * h) + 0.25 * np.cos(0.23 * w - 0.19 * d + 0.07 * h)
    return v.astype(np.float32)


def reference_points(shape, n=64):
    """Deterministic voxel positions (LCG), also generated by the Node test."""
    D, H, W = shape
    s = 12345
    pts = []
    for _ in range(n):
        s = (1103515245 * s + 12345) % 2147483648
        d = s % D
        s = (1103515245 * s + 12345) % 2147483648
        h = s % H
        s = (1103515245 * s + 12345) % 2147483648
        w = s % W
        pts.append((int(d), int(h), int(w)))
    return pts


def export_onnx(model, path, out_channels):
    model.eval()
    dummy = torch.from_numpy(reference_input((20, 22, 24)))[None, None]
    torch.onnx.export(model, dummy, path, opset_version=17, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N', 2: 'D', 3: 'H', 4: 'W'},
                                    'logits': {0: 'N', 2: 'D', 3: 'H', 4: 'W'}},
                      do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    shape = m.graph.output[0].type.tensor_type.shape.dim
    if shape[1].dim_value != out_channels:
        raise ValueError('unexpected output channels in the exported graph')


def convert(src_folder, out_folder, ref_shape=(40, 44, 48)):
    import hashlib
    chain = load_tfjs(src_folder)
    model = MeshNet(chain).eval()
    n_out = chain[-1]['kernel'].shape[-1] if chain[-1]['type'] == 'conv' else None
    x = reference_input(ref_shape)
    ref = numpy_forward(chain, x)
    got = torch_forward(model, x)
    err_random = float(np.abs(ref - got).max())
    onnx_path = os.path.join(out_folder, 'model.onnx')
    export_onnx(model, onnx_path, n_out)
    sha = hashlib.sha256(open(onnx_path, 'rb').read()).hexdigest()
    pts = reference_points(ref_shape)
    reference = {
        'comment': 'NumPy tfjs-semantics logits for reference_input(shape) (see tfjs_meshnet.py); '
                   'values[p][c] at points[p] (D, H, W)',
        'shape': list(ref_shape),
        'points': [list(p) for p in pts],
        'values': [[round(float(v), 6) for v in ref[p]] for p in pts],
        'channelMeans': [round(float(v), 6) for v in ref.reshape(-1, ref.shape[-1]).mean(axis=0)],
        'torchVsNumpyMaxAbs': err_random,
    }
    with open(os.path.join(out_folder, 'reference.json'), 'w') as f:
        json.dump(reference, f, indent=1)
    params = sum(p.numel() for p in model.parameters())
    return {'sha256': sha, 'params': int(params), 'torch_vs_numpy_max_abs': err_random, 'classes': int(n_out),
            'model': model, 'chain': chain}
