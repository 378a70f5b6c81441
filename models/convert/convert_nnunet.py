"""
Converts trained nnU-Net models (v2: plans.json + dataset.json + fold_*/checkpoint_final.pth; v1: plans.pkl +
fold_*/model_final_checkpoint.model[.pkl]) into this service's model folder: one ONNX file per channel variant
(the folds averaged inside the graph) and a manifest.json (see models/manifest.schema.json). See README.md.

  /usr/bin/python3 models/convert/convert_nnunet.py --out models/my-model --id my-model --name "…" \
      --version 1.0 --license "…" --orientation RAS \
      --variant flair-t2-t1=/path/Dataset101_X/nnUNetTrainer__nnUNetPlans__3d_fullres \
      [--variant flair=/path/…] [--folds 0 1 2 3 4] [--checkpoint checkpoint_final.pth] [--foreground lesion]

--orientation names the patient directions of the training images' voxel axes (i, j, k) as nnU-Net read them
(SimpleITK keeps each file's own voxel order: check your training data, e.g. with nibabel.aff2axcodes, and
translate RAS-style codes to the DICOM letters used here: nibabel ('L','A','S') → 'RAS' means i → Right …).
"""
import argparse
import hashlib
import json
import os
import pickle
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'reference'))
from nnunet_nets import FoldEnsemble, GenericUNetV1, PlainConvUNet  # noqa: E402

CHANNEL_ALIASES = {
    'FLAIR': ['flair', 't2flair', 't2-flair', 't2_flair', 'flair3d', '3dflair'],
    'T2': ['t2', 't2w', 't2-weighted'],
    'T1': ['t1', 't1w', 'mprage', 't1-weighted'],
    'T1C': ['t1c', 't1ce', 't1gd', 't1-gd', 't1post', 't1_gd'],
    'PD': ['pd', 'pdw', 'proton-density'],
}


class ConversionError(Exception):
    pass


def channel_name(raw, overrides):
    if raw in overrides:
        return overrides[raw]
    key = str(raw).strip().lower().replace(' ', '')
    for name, aliases in CHANNEL_ALIASES.items():
        if key in aliases:
            return name
    raise ConversionError(f'cannot map channel "{raw}" to FLAIR/T2/T1/T1C/PD: pass --channel-map "{raw}=FLAIR"')


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def load_torch(path):
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        return torch.load(path, map_location='cpu')


def orientation_after_transpose(orientation, transpose_forward):
    """Our W, H, D axes after nnU-Net's transpose_forward of the (k, j, i) array of images in `orientation`."""
    dirs = [orientation[2], orientation[1], orientation[0]]
    out = [''] * 3
    for a in range(3):
        out[2 - a] = dirs[transpose_forward[a]]
    return ''.join(out)


def normalisation(scheme, use_mask, props):
    s = str(scheme)
    if s in ('ZScoreNormalization', 'nonCT'):
        return {'method': 'zscore', 'mask': 'brain' if use_mask else 'all'}
    if s in ('CTNormalization', 'CT', 'CT2'):
        if props is None:
            raise ConversionError('CT normalisation needs the dataset intensity properties')
        sd = props.get('std', props.get('sd'))
        return {'method': 'fixed', 'mask': 'all', 'clipValues': [float(props['percentile_00_5']),
                                                                  float(props['percentile_99_5'])],
                'mean': float(props['mean']), 'std': float(max(sd, 1e-8))}
    if s in ('NoNormalization', 'noNorm'):
        return {'method': 'none', 'mask': 'all'}
    if s == 'RescaleTo01Normalization':
        return {'method': 'minmax', 'mask': 'all'}
    if s == 'RGBTo01Normalization':
        return {'method': 'fixed', 'mask': 'all', 'clipValues': [0.0, 255.0], 'mean': 0.0, 'std': 255.0}
    raise ConversionError(f'normalisation scheme {s} is not supported')


def labels_from(dataset):
    labels = dataset.get('labels', {})
    items = list(labels.items())
    if any(isinstance(v, (list, tuple)) for _, v in items):
        regions = [(k, v) for k, v in items if not (isinstance(v, int) and v == 0) and k != 'background']
        return 'sigmoid', [k for k, _ in regions]
    by_value = sorted(((int(v), k) for k, v in items))
    if [v for v, _ in by_value] != list(range(len(by_value))):
        raise ConversionError(f'labels must be 0..K-1, got {labels}')
    return 'softmax', [k for _, k in by_value]


def load_v2(folder, folds, checkpoint, configuration):
    plans = json.load(open(os.path.join(folder, 'plans.json')))
    dataset = json.load(open(os.path.join(folder, 'dataset.json')))
    if configuration is None:
        base = os.path.basename(os.path.normpath(folder))
        configuration = base.split('__')[-1] if '__' in base else '3d_fullres'
    configs = plans['configurations']
    if configuration not in configs:
        raise ConversionError(f'configuration {configuration} not in plans ({", ".join(configs)})')
    def resolve(name, seen=()):
        if name in seen:
            raise ConversionError(f'configuration {name} inherits from itself')
        c = dict(configs[name])
        parent = c.pop('inherits_from', None)
        if parent is None:
            return c
        merged = resolve(parent, seen + (name,))
        merged.update(c)
        return merged

    cfg = resolve(configuration)
    if cfg.get('previous_stage') is not None or 'cascade' in configuration:
        raise ConversionError(f'{configuration} is a cascade stage (it needs the low-resolution prediction): not supported')
    if len(cfg['patch_size']) != 3:
        raise ConversionError(f'{configuration} is a {len(cfg["patch_size"])}-D configuration: only 3-D models are supported')
    activation, labels = labels_from(dataset)
    channels = dataset.get('channel_names', dataset.get('modality'))
    n_in = len(channels)
    num_out = len(labels)
    if 'architecture' in cfg:
        arch = cfg['architecture']
        cls = str(arch['network_class_name']).rsplit('.', 1)[-1]
        if cls != 'PlainConvUNet':
            raise ConversionError(f'network {cls} is not supported (PlainConvUNet only)')
        kw = arch['arch_kwargs']
        net_args = dict(n_stages=kw['n_stages'], features_per_stage=kw['features_per_stage'],
                        kernel_sizes=kw['kernel_sizes'], strides=kw['strides'],
                        n_conv_per_stage=kw['n_conv_per_stage'],
                        n_conv_per_stage_decoder=kw['n_conv_per_stage_decoder'],
                        conv_bias=kw.get('conv_bias', True), norm=kw.get('norm_op', 'InstanceNorm3d'),
                        norm_kwargs=kw.get('norm_op_kwargs'),
                        nonlin_slope=float((kw.get('nonlin_kwargs') or {}).get('negative_slope', 0.01)))
    else:
        cls = cfg.get('UNet_class_name', 'PlainConvUNet')
        if cls != 'PlainConvUNet':
            raise ConversionError(f'network {cls} is not supported (PlainConvUNet only)')
        ks = cfg['conv_kernel_sizes']
        n_stages = len(ks)
        base, mx = cfg['UNet_base_num_features'], cfg['unet_max_num_features']
        net_args = dict(n_stages=n_stages, features_per_stage=[min(base * 2 ** i, mx) for i in range(n_stages)],
                        kernel_sizes=ks, strides=cfg['pool_op_kernel_sizes'],
                        n_conv_per_stage=cfg['n_conv_per_stage_encoder'],
                        n_conv_per_stage_decoder=cfg['n_conv_per_stage_decoder'])
    nets, mirror = [], None
    for fold in folds:
        path = os.path.join(folder, f'fold_{fold}', checkpoint or 'checkpoint_final.pth')
        if not os.path.isfile(path):
            raise ConversionError(f'missing checkpoint {path}')
        ck = load_torch(path)
        net = PlainConvUNet(n_in, num_classes=num_out, **net_args)
        sd = PlainConvUNet.normalise_state_dict(ck['network_weights'])
        load_strict(net, sd, path)
        nets.append(net.eval())
        m = ck.get('inference_allowed_mirroring_axes')
        mirror = list(m) if m is not None else []
    props = plans.get('foreground_intensity_properties_per_channel', {})
    norms = [normalisation(s, u, props.get(str(c))) for c, (s, u) in
             enumerate(zip(cfg['normalization_schemes'], cfg['use_mask_for_norm']))]
    return {
        'version': 'nnU-Net v2',
        'nets': nets,
        'in_channels': n_in,
        'channels': [channels[str(c)] if isinstance(channels, dict) else channels[c] for c in range(n_in)],
        'labels': labels,
        'activation': activation,
        'spacing': [float(x) for x in cfg['spacing']],
        'patch': [int(x) for x in cfg['patch_size']],
        'transpose_forward': plans.get('transpose_forward', [0, 1, 2]),
        'mirror': mirror,
        'normalization': norms,
        'provenance': {'source': 'nnU-Net v2', 'plans': plans.get('plans_name'), 'dataset': plans.get('dataset_name'),
                       'configuration': configuration, 'folds': list(folds),
                       'trainer': ck.get('trainer_name')},
    }


def load_strict(net, sd, path):
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        # encoder stages saved without the Sequential wrapper (older dynamic_network_architectures)
        alt = {}
        for k, v in sd.items():
            parts = k.split('.')
            if parts[:2] == ['encoder', 'stages'] and len(parts) > 3 and parts[3] == 'convs':
                k = '.'.join(parts[:3] + ['0'] + parts[3:])
            alt[k] = v
        if all(k in alt for k in own):
            sd = alt
            missing = []
    if missing:
        raise ConversionError(f'{path}: the checkpoint lacks {len(missing)} tensors of the network, e.g. {missing[:3]}')
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ConversionError(f'{path}: {k} has shape {tuple(sd[k].shape)}, the plans imply {tuple(v.shape)}')
    net.load_state_dict({k: sd[k] for k in own}, strict=True)


def load_v1(folder, folds, checkpoint, dataset_json):
    plans = pickle.load(open(os.path.join(folder, 'plans.pkl'), 'rb'))
    nets = []
    stage = None
    for fold in folds:
        path = os.path.join(folder, f'fold_{fold}', checkpoint or 'model_final_checkpoint.model')
        if not os.path.isfile(path):
            raise ConversionError(f'missing checkpoint {path}')
        meta_path = path + '.pkl'
        if os.path.isfile(meta_path):
            meta = pickle.load(open(meta_path, 'rb'))
            init = meta.get('init', ())
            if len(init) > 5 and init[5] is not None:
                stage = int(init[5])
            plans = meta.get('plans', plans)
        stages = plans['plans_per_stage']
        key = stage if stage is not None else max(stages.keys())
        sp = stages[key]
        if len(sp['patch_size']) != 3:
            raise ConversionError('only 3-D nnU-Net v1 models are supported')
        n_in = int(plans['num_modalities'])
        num_classes = int(plans['num_classes']) + 1
        net = GenericUNetV1(n_in, int(plans.get('base_num_features', 32)), num_classes, sp['pool_op_kernel_sizes'],
                            sp['conv_kernel_sizes'], int(plans.get('conv_per_stage', 2)))
        ck = load_torch(path)
        load_strict(net, GenericUNetV1.normalise_state_dict(ck['state_dict']), path)
        nets.append(net.eval())
    modalities = plans['modalities']
    names = [modalities[c] for c in range(n_in)]
    if dataset_json is not None:
        _, labels = labels_from(json.load(open(dataset_json)))
    else:
        all_classes = plans.get('all_classes', list(range(1, num_classes)))
        labels = ['background'] + [f'label_{c}' for c in all_classes]
    if len(labels) != num_classes:
        raise ConversionError(f'{len(labels)} labels for {num_classes} output channels')
    intensity = (plans.get('dataset_properties') or {}).get('intensityproperties') or {}
    schemes = plans['normalization_schemes']
    use_mask = plans.get('use_mask_for_norm', {c: False for c in range(n_in)})
    norms = [normalisation(schemes[c], use_mask[c], intensity.get(c)) for c in range(n_in)]
    dummy2d = bool(sp.get('do_dummy_2D_data_aug', False))
    return {
        'version': 'nnU-Net v1',
        'nets': nets,
        'in_channels': n_in,
        'channels': names,
        'labels': labels,
        'activation': 'softmax',
        'spacing': [float(x) for x in sp['current_spacing']],
        'patch': [int(x) for x in sp['patch_size']],
        'transpose_forward': list(plans.get('transpose_forward', [0, 1, 2])),
        'mirror': [1, 2] if dummy2d else [0, 1, 2],
        'normalization': norms,
        'provenance': {'source': 'nnU-Net v1', 'stage': key, 'folds': list(folds)},
    }


def detect(folder):
    if os.path.isfile(os.path.join(folder, 'plans.json')):
        return 'v2'
    if os.path.isfile(os.path.join(folder, 'plans.pkl')):
        return 'v1'
    raise ConversionError(f'{folder} holds neither plans.json (nnU-Net v2) nor plans.pkl (v1)')


def export(model, path, patch, in_channels, input_name, output_name):
    net = FoldEnsemble(model).eval()
    x = torch.zeros((1, in_channels) + tuple(patch), dtype=torch.float32)
    axes = {0: 'N', 2: 'D', 3: 'H', 4: 'W'}
    with torch.no_grad():
        torch.onnx.export(net, x, path, input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: axes, output_name: axes}, opset_version=17,
                          do_constant_folding=True)
    # check: the exported graph (executed with torch functions) reproduces the torch network
    from onnx_torch import OnnxTorch  # noqa: E402
    g = torch.Generator().manual_seed(0)
    probe = torch.randn((1, in_channels) + tuple(patch), generator=g)
    with torch.no_grad():
        a = net(probe)
    b = OnnxTorch(path)(probe)
    diff = float((a - b).abs().max())
    if diff > 1e-3:
        raise ConversionError(f'the exported ONNX graph differs from the network by {diff}')
    return diff


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='model folder to write (models/<id>)')
    ap.add_argument('--id', required=True)
    ap.add_argument('--name', required=True)
    ap.add_argument('--version', required=True)
    ap.add_argument('--license', default='see the original model')
    ap.add_argument('--intended-use', default='Research use only; not a medical device.')
    ap.add_argument('--authors')
    ap.add_argument('--task', default='ms-lesion-segmentation')
    ap.add_argument('--family', default='Deep Learning')
    ap.add_argument('--orientation', required=True, help="training images' voxel-axis directions (DICOM letters)")
    ap.add_argument('--variant', action='append', required=True, metavar='ID=FOLDER')
    ap.add_argument('--folds', nargs='+', default=['0'])
    ap.add_argument('--checkpoint', help='checkpoint file name inside fold_X (default: the final one)')
    ap.add_argument('--configuration', help='v2 configuration (default: from the folder name)')
    ap.add_argument('--dataset-json', help='v1: dataset.json for label names')
    ap.add_argument('--channel-map', action='append', default=[], metavar='NAME=FLAIR')
    ap.add_argument('--foreground', help='foreground label name (default: the first non-background label)')
    ap.add_argument('--threshold', type=float, default=0.5)
    ap.add_argument('--tile-step', type=float, default=0.5)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    overrides = dict(kv.split('=', 1) for kv in a.channel_map)
    os.makedirs(a.out, exist_ok=True)
    variants, common = [], None
    for spec in a.variant:
        if '=' not in spec:
            raise ConversionError(f'--variant {spec}: expected ID=FOLDER')
        vid, folder = spec.split('=', 1)
        kind = detect(folder)
        m = load_v2(folder, a.folds, a.checkpoint, a.configuration) if kind == 'v2' else \
            load_v1(folder, a.folds, a.checkpoint, a.dataset_json)
        chans = [channel_name(c, overrides) for c in m['channels']]
        norm = {c: n for c, n in zip(chans, m['normalization'])}
        key = {k: m[k] for k in ('labels', 'activation', 'spacing', 'patch', 'transpose_forward', 'mirror')}
        if common is None:
            common = dict(key, normalization={}, provenance=m['provenance'])
        elif any(common[k] != key[k] for k in key):
            diffs = [k for k in key if common[k] != key[k]]
            raise ConversionError(f'variant {vid} differs from the first in {", ".join(diffs)}: convert it as its own model')
        for c, n in norm.items():
            if c in common['normalization'] and common['normalization'][c] != n:
                raise ConversionError(f'variant {vid} normalises {c} differently from another variant')
            common['normalization'][c] = n
        path = os.path.join(a.out, f'{vid}.onnx')
        diff = export(m['nets'], path, m['patch'], m['in_channels'], 'input', 'logits')
        variants.append({'id': vid, 'channels': chans, 'file': f'{vid}.onnx', 'sha256': sha256(path)})
        print(f'{vid}: {m["version"]} {len(m["nets"])} fold(s), channels {"+".join(chans)}, '
              f'ONNX vs torch max |diff| {diff:.1e}')
    labels = common['labels']
    if common['activation'] == 'softmax':
        fg_candidates = labels[1:]
    else:
        fg_candidates = labels
    fg = a.foreground or (fg_candidates[0] if fg_candidates else None)
    if fg not in labels:
        raise ConversionError(f'foreground label {fg} not among {labels}')
    tf = list(common['transpose_forward'])
    manifest = {
        'schemaVersion': 1,
        'id': a.id,
        'name': a.name,
        'version': a.version,
        'task': a.task,
        'family': a.family,
        'license': a.license,
        'intendedUse': a.intended_use,
        **({'authors': a.authors} if a.authors else {}),
        'orientation': orientation_after_transpose(a.orientation, tf),
        'spacing': common['spacing'],
        'inference': {'mode': 'sliding-window', 'patchSize': common['patch'], 'tileStep': a.tile_step,
                      'gaussian': True, 'mirrorAxes': sorted(int(x) for x in common['mirror']), 'batchSize': 1},
        'normalization': common['normalization'],
        'input': {'name': 'input'},
        'output': {'name': 'logits', 'kind': 'logits', 'activation': common['activation'], 'labels': labels},
        'foregroundLabel': labels.index(fg),
        'threshold': a.threshold,
        'variants': variants,
        'training': dict(common['provenance'], convertedBy='models/convert/convert_nnunet.py',
                         trainingOrientation=a.orientation, transposeForward=tf),
    }
    with open(os.path.join(a.out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
        f.write('\n')
    print(f'wrote {os.path.join(a.out, "manifest.json")}')
    return manifest


if __name__ == '__main__':
    try:
        main()
    except ConversionError as e:
        sys.exit(f'convert_nnunet: {e}')
