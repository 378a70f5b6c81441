"""
Builds small nnU-Net-shaped trained-model folders (random weights) for testing convert_nnunet.py, since no real
checkpoint is reachable here. The networks are assembled the way nnU-Net assembles them — module trees whose
state dicts carry nnU-Net's parameter names *and* its aliases (v2: `…all_modules.<i>` and `decoder.encoder.…`) —
independently of models/convert/nnunet_nets.py. Also writes a probe input and the expected (fold-averaged)
logits of the torch networks, for the test to compare the converted ONNX against.

  /usr/bin/python3 models/convert/testing/make_fake_nnunet.py OUT_DIR

OUT_DIR/v2/Dataset900_Fake/nnUNetTrainer__nnUNetPlans__3d_fullres/  (new-style plans, 2 folds, FLAIR+T2)
OUT_DIR/v2old/Dataset901_Fake/nnUNetTrainer__nnUNetPlans__3d_fullres/  (old-style plans keys, FLAIR, transposed)
OUT_DIR/v1/nnUNetTrainerV2__nnUNetPlansv2.1/  (plans.pkl, model_final_checkpoint.model[.pkl], FLAIR+T1)
OUT_DIR/<name>.probe.f32, <name>.expected.f32, probes.json
"""
import json
import os
import pickle
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

torch.set_num_threads(2)


def randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('weight') and p.dim() == 1:  # norm scale
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return net


# ---------------------------------------------------------------- nnU-Net v2 (dynamic_network_architectures style)
class ConvDropoutNormReLU(nn.Module):
    def __init__(self, cin, cout, kernel, stride):
        super().__init__()
        pad = [(k - 1) // 2 for k in kernel]
        self.conv = nn.Conv3d(cin, cout, kernel, stride, pad, bias=True)
        self.norm = nn.InstanceNorm3d(cout, eps=1e-5, affine=True)
        self.nonlin = nn.LeakyReLU(inplace=True)
        self.all_modules = nn.Sequential(self.conv, self.norm, self.nonlin)

    def forward(self, x):
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    def __init__(self, n, cin, cout, kernel, stride):
        super().__init__()
        self.convs = nn.Sequential(ConvDropoutNormReLU(cin, cout, kernel, stride),
                                   *[ConvDropoutNormReLU(cout, cout, kernel, 1) for _ in range(n - 1)])

    def forward(self, x):
        return self.convs(x)


class PlainConvEncoder(nn.Module):
    def __init__(self, cin, features, kernels, strides, n_conv):
        super().__init__()
        stages = []
        for f, k, s, n in zip(features, kernels, strides, n_conv):
            stages.append(nn.Sequential(StackedConvBlocks(n, cin, f, k, s)))
            cin = f
        self.stages = nn.Sequential(*stages)
        self.output_channels, self.strides, self.kernel_sizes = features, strides, kernels

    def forward(self, x):
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out


class UNetDecoder(nn.Module):
    def __init__(self, encoder, num_classes, n_conv_dec):
        super().__init__()
        self.encoder = encoder
        n = len(encoder.output_channels)
        st, tc, seg = [], [], []
        for s in range(1, n):
            below, skip = encoder.output_channels[-s], encoder.output_channels[-(s + 1)]
            stride = encoder.strides[-s]
            tc.append(nn.ConvTranspose3d(below, skip, stride, stride, bias=True))
            st.append(StackedConvBlocks(n_conv_dec[s - 1], 2 * skip, skip, encoder.kernel_sizes[-(s + 1)], 1))
            seg.append(nn.Conv3d(skip, num_classes, 1, 1, 0, bias=True))
        self.stages, self.transpconvs, self.seg_layers = nn.ModuleList(st), nn.ModuleList(tc), nn.ModuleList(seg)

    def forward(self, skips):
        x = skips[-1]
        for s in range(len(self.stages)):
            x = self.stages[s](torch.cat((self.transpconvs[s](x), skips[-(s + 2)]), 1))
        return self.seg_layers[-1](x)


class FakePlainConvUNet(nn.Module):
    def __init__(self, cin, features, kernels, strides, n_conv, num_classes, n_conv_dec):
        super().__init__()
        self.encoder = PlainConvEncoder(cin, features, kernels, strides, n_conv)
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_dec)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def write_v2(root, name, channels, labels, cfg, arch_style, transpose, mirror, seeds):
    folder = os.path.join(root, name, 'nnUNetTrainer__nnUNetPlans__3d_fullres')
    os.makedirs(folder, exist_ok=True)
    features, kernels, strides = cfg['features'], cfg['kernels'], cfg['strides']
    n_conv, n_dec = [2] * len(features), [2] * (len(features) - 1)
    if arch_style == 'new':
        conf = {
            'data_identifier': 'nnUNetPlans_3d_fullres', 'preprocessor_name': 'DefaultPreprocessor',
            'batch_size': 2, 'patch_size': cfg['patch'], 'spacing': cfg['spacing'],
            'normalization_schemes': cfg['norm'], 'use_mask_for_norm': cfg['use_mask'],
            'architecture': {
                'network_class_name': 'dynamic_network_architectures.architectures.unet.PlainConvUNet',
                'arch_kwargs': {
                    'n_stages': len(features), 'features_per_stage': features,
                    'conv_op': 'torch.nn.modules.conv.Conv3d', 'kernel_sizes': kernels, 'strides': strides,
                    'n_conv_per_stage': n_conv, 'n_conv_per_stage_decoder': n_dec, 'conv_bias': True,
                    'norm_op': 'torch.nn.modules.instancenorm.InstanceNorm3d',
                    'norm_op_kwargs': {'eps': 1e-05, 'affine': True}, 'dropout_op': None,
                    'dropout_op_kwargs': None, 'nonlin': 'torch.nn.LeakyReLU', 'nonlin_kwargs': {'inplace': True},
                },
                '_kw_requires_import': ['conv_op', 'norm_op', 'dropout_op', 'nonlin'],
            },
        }
    else:
        conf = {
            'data_identifier': 'nnUNetPlans_3d_fullres', 'batch_size': 2, 'patch_size': cfg['patch'],
            'spacing': cfg['spacing'], 'normalization_schemes': cfg['norm'], 'use_mask_for_norm': cfg['use_mask'],
            'UNet_class_name': 'PlainConvUNet', 'UNet_base_num_features': features[0],
            'n_conv_per_stage_encoder': n_conv, 'n_conv_per_stage_decoder': n_dec,
            'num_pool_per_axis': [len(features) - 1] * 3, 'pool_op_kernel_sizes': strides,
            'conv_kernel_sizes': kernels, 'unet_max_num_features': max(features),
        }
    plans = {
        'dataset_name': name, 'plans_name': 'nnUNetPlans', 'original_median_spacing_after_transp': cfg['spacing'],
        'image_reader_writer': 'SimpleITKIO', 'transpose_forward': transpose,
        'transpose_backward': [int(np.argsort(transpose)[i]) for i in range(3)],
        'configurations': {'3d_fullres': conf, '3d_lowres': {'inherits_from': '3d_fullres', 'spacing': [3, 3, 3]}},
        'experiment_planner_used': 'ExperimentPlanner',
        'foreground_intensity_properties_per_channel': cfg.get('props', {}),
    }
    dataset = {'channel_names': {str(i): c for i, c in enumerate(channels)}, 'labels': labels, 'numTraining': 10,
               'file_ending': '.nii.gz'}
    json.dump(plans, open(os.path.join(folder, 'plans.json'), 'w'), indent=2)
    json.dump(dataset, open(os.path.join(folder, 'dataset.json'), 'w'), indent=2)
    nets = []
    for fold, seed in enumerate(seeds):
        net = randomise(FakePlainConvUNet(len(channels), features, kernels, strides, n_conv, len(labels), n_dec),
                        seed).eval()
        os.makedirs(os.path.join(folder, f'fold_{fold}'), exist_ok=True)
        torch.save({'network_weights': net.state_dict(), 'optimizer_state': None, 'grad_scaler_state': None,
                    'logging': {}, '_best_ema': 0.5, 'current_epoch': 1000,
                    'init_args': {'plans': plans, 'configuration': '3d_fullres', 'fold': fold, 'dataset_json': dataset},
                    'trainer_name': 'nnUNetTrainer', 'inference_allowed_mirroring_axes': mirror},
                   os.path.join(folder, f'fold_{fold}', 'checkpoint_final.pth'))
        nets.append(net)
    return folder, nets


# ------------------------------------------------------------------------------------ nnU-Net v1 (Generic_UNet)
class ConvDropoutNormNonlin(nn.Module):
    def __init__(self, cin, cout, kernel, stride):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride, [(k - 1) // 2 for k in kernel], bias=True)
        self.dropout = None
        self.instnorm = nn.InstanceNorm3d(cout, eps=1e-5, affine=True)
        self.lrelu = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x):
        return self.lrelu(self.instnorm(self.conv(x)))


class StackedConvLayers(nn.Module):
    def __init__(self, cin, cout, n, kernel, first_stride=None):
        super().__init__()
        self.output_channels = cout
        self.blocks = nn.Sequential(ConvDropoutNormNonlin(cin, cout, kernel, first_stride or [1, 1, 1]),
                                    *[ConvDropoutNormNonlin(cout, cout, kernel, [1, 1, 1]) for _ in range(n - 1)])

    def forward(self, x):
        return self.blocks(x)


class FakeGenericUNet(nn.Module):
    def __init__(self, cin, base, num_classes, pools, kernels, n_conv=2, max_features=320):
        super().__init__()
        self.conv_blocks_context = nn.ModuleList()
        feats = base
        for d in range(len(pools)):
            self.conv_blocks_context.append(StackedConvLayers(cin, feats, n_conv, kernels[d], pools[d - 1] if d else None))
            cin, feats = feats, min(feats * 2, max_features)
        self.conv_blocks_context.append(nn.Sequential(
            StackedConvLayers(cin, feats, n_conv - 1, kernels[len(pools)], pools[-1]),
            StackedConvLayers(feats, feats, 1, kernels[len(pools)])))
        self.tu, self.conv_blocks_localization, self.seg_outputs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        down = feats
        for u in range(len(pools)):
            skip = self.conv_blocks_context[-(2 + u)].output_channels
            self.tu.append(nn.ConvTranspose3d(down, skip, pools[-(u + 1)], pools[-(u + 1)], bias=False))
            self.conv_blocks_localization.append(nn.Sequential(
                StackedConvLayers(2 * skip, skip, n_conv - 1, kernels[-(u + 1)]),
                StackedConvLayers(skip, skip, 1, kernels[-(u + 1)])))
            self.seg_outputs.append(nn.Conv3d(skip, num_classes, 1, 1, 0, 1, 1, False))
            down = skip

    def forward(self, x):
        skips = []
        for d in range(len(self.conv_blocks_context) - 1):
            x = self.conv_blocks_context[d](x)
            skips.append(x)
        x = self.conv_blocks_context[-1](x)
        for u in range(len(self.tu)):
            x = self.conv_blocks_localization[u](torch.cat((self.tu[u](x), skips[-(u + 1)]), 1))
        return self.seg_outputs[-1](x)


def write_v1(root, seeds):
    folder = os.path.join(root, 'nnUNetTrainerV2__nnUNetPlansv2.1')
    pools = [[2, 2, 2], [1, 2, 2]]
    kernels = [[3, 3, 3], [3, 3, 3], [1, 3, 3]]
    stage = {'batch_size': 2, 'num_pool_per_axis': [1, 2, 2], 'patch_size': np.array([16, 24, 24]),
             'median_patient_size_in_voxels': np.array([100, 120, 120]), 'current_spacing': np.array([2.0, 1.0, 1.0]),
             'original_spacing': np.array([2.0, 1.0, 1.0]), 'do_dummy_2D_data_aug': False,
             'pool_op_kernel_sizes': pools, 'conv_kernel_sizes': kernels}
    plans = {'num_stages': 1, 'num_modalities': 2, 'modalities': {0: 'FLAIR', 1: 'T1'},
             'normalization_schemes': OrderedDict([(0, 'nonCT'), (1, 'nonCT')]),
             'use_mask_for_norm': OrderedDict([(0, True), (1, False)]), 'dataset_properties': {
                 'intensityproperties': None}, 'plans_per_stage': {0: stage}, 'num_classes': 1, 'all_classes': [1],
             'base_num_features': 6, 'conv_per_stage': 2, 'transpose_forward': [0, 1, 2],
             'transpose_backward': [0, 1, 2], 'keep_only_largest_region': None, 'min_region_size_per_class': None}
    os.makedirs(folder, exist_ok=True)
    pickle.dump(plans, open(os.path.join(folder, 'plans.pkl'), 'wb'))
    nets = []
    for fold, seed in enumerate(seeds):
        net = randomise(FakeGenericUNet(2, 6, 2, pools, kernels), seed).eval()
        d = os.path.join(folder, f'fold_{fold}')
        os.makedirs(d, exist_ok=True)
        torch.save({'epoch': 1000, 'state_dict': net.state_dict(), 'optimizer_state_dict': None,
                    'lr_scheduler_state_dict': None, 'plot_stuff': ([0.5], [0.4], [0.3], [0.2]),
                    'best_stuff': (0, 0, 0, 0)}, os.path.join(d, 'model_final_checkpoint.model'))
        pickle.dump({'init': ('plans.pkl', fold, d, 'preprocessed', True, 0, True, False, True),
                     'name': 'nnUNetTrainerV2', 'class': "<class 'nnUNetTrainerV2'>", 'plans': plans},
                    open(os.path.join(d, 'model_final_checkpoint.model.pkl'), 'wb'))
        nets.append(net)
    return folder, nets


def probe(out, name, nets, channels, shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((1, channels) + tuple(shape), generator=g)
    with torch.no_grad():
        y = sum(n(x) for n in nets) / len(nets)
    x.numpy().astype('<f4').tofile(os.path.join(out, f'{name}.probe.f32'))
    y.numpy().astype('<f4').tofile(os.path.join(out, f'{name}.expected.f32'))
    return {'input': [1, channels] + list(shape), 'output': list(y.shape)}


def main(out):
    os.makedirs(out, exist_ok=True)
    probes = {}
    folder, nets = write_v2(os.path.join(out, 'v2'), 'Dataset900_Fake', ['FLAIR', 'T2'],
                            {'background': 0, 'lesion': 1},
                            {'features': [4, 8, 16], 'kernels': [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                             'strides': [[1, 1, 1], [1, 2, 2], [2, 2, 2]], 'patch': [16, 32, 32],
                             'spacing': [3.0, 0.9, 0.9], 'norm': ['ZScoreNormalization', 'ZScoreNormalization'],
                             'use_mask': [True, True]},
                            'new', [0, 1, 2], (1, 2), seeds=[1, 2])
    probes['v2'] = dict(probe(out, 'v2', nets, 2, [16, 32, 32], 7), folder=folder)
    folder, nets = write_v2(os.path.join(out, 'v2old'), 'Dataset901_Fake', ['T2-FLAIR'],
                            {'background': 0, 'edema': 1, 'lesion': 2},
                            {'features': [4, 8], 'kernels': [[3, 3, 3], [3, 3, 3]], 'strides': [[1, 1, 1], [2, 2, 2]],
                             'patch': [24, 16, 16], 'spacing': [1.0, 1.0, 1.2], 'norm': ['CTNormalization'],
                             'use_mask': [False],
                             'props': {'0': {'mean': 100.0, 'std': 20.0, 'percentile_00_5': 10.0,
                                             'percentile_99_5': 300.0, 'median': 90.0, 'min': 0.0, 'max': 400.0}}},
                            'old', [2, 0, 1], (0, 1, 2), seeds=[3])
    probes['v2old'] = dict(probe(out, 'v2old', nets, 1, [24, 16, 16], 8), folder=folder)
    folder, nets = write_v1(os.path.join(out, 'v1'), seeds=[4, 5])
    probes['v1'] = dict(probe(out, 'v1', nets, 2, [16, 24, 24], 9), folder=folder)
    json.dump(probes, open(os.path.join(out, 'probes.json'), 'w'), indent=2)


if __name__ == '__main__':
    main(sys.argv[1])
