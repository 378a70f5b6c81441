"""
Inference-only re-implementations of the two nnU-Net network families, with the parameter names their
checkpoints use, so that a checkpoint's state dict loads without nnU-Net installed:

- v2 `PlainConvUNet` (dynamic_network_architectures): encoder.stages.<s>.0.convs.<c>.{conv,norm}.*,
  decoder.transpconvs.<s>.*, decoder.stages.<s>.convs.<c>.{conv,norm}.*, decoder.seg_layers.<s>.*
  (checkpoints also hold aliases — `…all_modules.<i>.*` and `decoder.encoder.*` — that point at the same tensors);
- v1 `Generic_UNet` (nnUNetTrainerV2, convolutional pooling and upsampling): conv_blocks_context.<d>.blocks.<b>.
  {conv,instnorm}.*, the bottleneck as conv_blocks_context.<n>.{0,1}.blocks.*, conv_blocks_localization.<u>.{0,1}
  .blocks.*, tu.<u>.weight, seg_outputs.<u>.weight.

Both are conv → (dropout, identity at inference) → instance norm → leaky ReLU; only the highest-resolution
segmentation head is evaluated (deep supervision is a training device). Written from the published architecture
descriptions (Isensee et al., Nature Methods 2021) and checkpoint layouts; not nnU-Net code.
"""
import torch
from torch import nn

NORMS = {
    'InstanceNorm3d': nn.InstanceNorm3d,
    'InstanceNorm2d': nn.InstanceNorm2d,
    'BatchNorm3d': nn.BatchNorm3d,
    'BatchNorm2d': nn.BatchNorm2d,
}


def _short(name):
    return str(name).rsplit('.', 1)[-1]


def _tuple(x, nd):
    return tuple(x) if isinstance(x, (list, tuple)) else (x,) * nd


class ConvNormAct(nn.Module):
    """conv → norm → LeakyReLU; attribute names as in v2 (`conv`, `norm`) or v1 (`conv`, `instnorm`)."""

    def __init__(self, nd, cin, cout, kernel, stride, bias, norm, norm_kwargs, slope, norm_attr='norm'):
        super().__init__()
        kernel = _tuple(kernel, nd)
        conv = nn.Conv3d if nd == 3 else nn.Conv2d
        self.conv = conv(cin, cout, kernel, _tuple(stride, nd), [(k - 1) // 2 for k in kernel], bias=bias)
        self.norm_attr = norm_attr
        setattr(self, norm_attr, norm(cout, **norm_kwargs))
        self.act = nn.LeakyReLU(slope)

    def forward(self, x):
        return self.act(getattr(self, self.norm_attr)(self.conv(x)))


class StackedConvBlocks(nn.Module):
    def __init__(self, n, nd, cin, cout, kernel, first_stride, bias, norm, norm_kwargs, slope):
        super().__init__()
        self.convs = nn.Sequential(
            ConvNormAct(nd, cin, cout, kernel, first_stride, bias, norm, norm_kwargs, slope),
            *[ConvNormAct(nd, cout, cout, kernel, 1, bias, norm, norm_kwargs, slope) for _ in range(n - 1)],
        )

    def forward(self, x):
        return self.convs(x)


class _Encoder(nn.Module):
    def __init__(self, stages):
        super().__init__()
        self.stages = nn.Sequential(*stages)


class _Decoder(nn.Module):
    def __init__(self, transpconvs, stages, seg_layers):
        super().__init__()
        self.transpconvs = nn.ModuleList(transpconvs)
        self.stages = nn.ModuleList(stages)
        self.seg_layers = nn.ModuleList(seg_layers)


class PlainConvUNet(nn.Module):
    """nnU-Net v2's default U-Net (arch_kwargs of plans.json 'architecture')."""

    def __init__(self, input_channels, n_stages, features_per_stage, kernel_sizes, strides, n_conv_per_stage,
                 num_classes, n_conv_per_stage_decoder, conv_bias=True, norm='InstanceNorm3d', norm_kwargs=None,
                 nonlin_slope=0.01, nd=3):
        super().__init__()
        norm_cls = NORMS[_short(norm)]
        norm_kwargs = dict(norm_kwargs or {'eps': 1e-5, 'affine': True})
        if isinstance(n_conv_per_stage, int):
            n_conv_per_stage = [n_conv_per_stage] * n_stages
        if isinstance(n_conv_per_stage_decoder, int):
            n_conv_per_stage_decoder = [n_conv_per_stage_decoder] * (n_stages - 1)
        stages = []
        cin = input_channels
        for s in range(n_stages):
            block = StackedConvBlocks(n_conv_per_stage[s], nd, cin, features_per_stage[s], kernel_sizes[s], strides[s],
                                      conv_bias, norm_cls, norm_kwargs, nonlin_slope)
            stages.append(nn.Sequential(block))
            cin = features_per_stage[s]
        transp = nn.ConvTranspose3d if nd == 3 else nn.ConvTranspose2d
        conv = nn.Conv3d if nd == 3 else nn.Conv2d
        tcs, dstages, segs = [], [], []
        for s in range(1, n_stages):
            below, skip = features_per_stage[-s], features_per_stage[-(s + 1)]
            stride = _tuple(strides[-s], nd)
            tcs.append(transp(below, skip, stride, stride, bias=conv_bias))
            dstages.append(StackedConvBlocks(n_conv_per_stage_decoder[s - 1], nd, 2 * skip, skip,
                                             kernel_sizes[-(s + 1)], 1, conv_bias, norm_cls, norm_kwargs,
                                             nonlin_slope))
            segs.append(conv(skip, num_classes, 1, 1, 0, bias=True))
        self.encoder = _Encoder(stages)
        self.decoder = _Decoder(tcs, dstages, segs)

    def forward(self, x):
        skips = []
        for stage in self.encoder.stages:
            x = stage(x)
            skips.append(x)
        x = skips[-1]
        for s in range(len(self.decoder.stages)):
            x = self.decoder.transpconvs[s](x)
            x = torch.cat((x, skips[-(s + 2)]), 1)
            x = self.decoder.stages[s](x)
        return self.decoder.seg_layers[-1](x)

    @staticmethod
    def normalise_state_dict(sd):
        """Drops the checkpoint's aliases and wrapper prefixes; returns the tensors this module owns."""
        out = {}
        for k, v in sd.items():
            for p in ('_orig_mod.', 'module.'):
                if k.startswith(p):
                    k = k[len(p):]
            if '.all_modules.' in k or k.startswith('decoder.encoder.'):
                continue
            out[k] = v
        return out


class _V1Stacked(nn.Module):
    def __init__(self, nd, cin, cout, n, kernel, first_stride, norm_kwargs, slope):
        super().__init__()
        norm = nn.InstanceNorm3d if nd == 3 else nn.InstanceNorm2d
        mk = lambda a, b, s: ConvNormAct(nd, a, b, kernel, s, True, norm, norm_kwargs, slope, norm_attr='instnorm')  # noqa: E731
        self.blocks = nn.Sequential(mk(cin, cout, first_stride or 1), *[mk(cout, cout, 1) for _ in range(n - 1)])
        self.output_channels = cout

    def forward(self, x):
        return self.blocks(x)


class GenericUNetV1(nn.Module):
    """nnU-Net v1's Generic_UNet as nnUNetTrainerV2 builds it (convolutional pooling and upsampling)."""

    def __init__(self, input_channels, base_num_features, num_classes, pool_op_kernel_sizes, conv_kernel_sizes,
                 num_conv_per_stage=2, max_num_features=320, nd=3, norm_kwargs=None, slope=0.01):
        super().__init__()
        norm_kwargs = dict(norm_kwargs or {'eps': 1e-5, 'affine': True})
        num_pool = len(pool_op_kernel_sizes)
        context = []
        cin, cout = input_channels, base_num_features
        for d in range(num_pool):
            first = pool_op_kernel_sizes[d - 1] if d > 0 else None
            context.append(_V1Stacked(nd, cin, cout, num_conv_per_stage, conv_kernel_sizes[d], first, norm_kwargs,
                                      slope))
            cin = cout
            cout = min(int(round(cout * 2)), max_num_features)
        final = cout
        context.append(nn.Sequential(
            _V1Stacked(nd, cin, cout, num_conv_per_stage - 1, conv_kernel_sizes[num_pool], pool_op_kernel_sizes[-1],
                       norm_kwargs, slope),
            _V1Stacked(nd, cout, final, 1, conv_kernel_sizes[num_pool], None, norm_kwargs, slope)))
        self.conv_blocks_context = nn.ModuleList(context)
        transp = nn.ConvTranspose3d if nd == 3 else nn.ConvTranspose2d
        conv = nn.Conv3d if nd == 3 else nn.Conv2d
        tu, loc, seg = [], [], []
        down = final
        for u in range(num_pool):
            skip = context[-(2 + u)].output_channels
            k = _tuple(pool_op_kernel_sizes[-(u + 1)], nd)
            tu.append(transp(down, skip, k, k, bias=False))
            loc.append(nn.Sequential(
                _V1Stacked(nd, 2 * skip, skip, num_conv_per_stage - 1, conv_kernel_sizes[-(u + 1)], None, norm_kwargs,
                           slope),
                _V1Stacked(nd, skip, skip, 1, conv_kernel_sizes[-(u + 1)], None, norm_kwargs, slope)))
            seg.append(conv(skip, num_classes, 1, 1, 0, 1, 1, False))
            down = skip
        self.tu = nn.ModuleList(tu)
        self.conv_blocks_localization = nn.ModuleList(loc)
        self.seg_outputs = nn.ModuleList(seg)

    def forward(self, x):
        skips = []
        for d in range(len(self.conv_blocks_context) - 1):
            x = self.conv_blocks_context[d](x)
            skips.append(x)
        x = self.conv_blocks_context[-1](x)
        for u in range(len(self.tu)):
            x = self.tu[u](x)
            x = torch.cat((x, skips[-(u + 1)]), 1)
            x = self.conv_blocks_localization[u](x)
        return self.seg_outputs[-1](x)

    @staticmethod
    def normalise_state_dict(sd):
        out = {}
        for k, v in sd.items():
            if k.startswith('module.'):
                k = k[len('module.'):]
            out[k] = v
        return out


class FoldEnsemble(nn.Module):
    """Mean of the folds' logits (what nnU-Net's predictor does before softmax)."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x):
        y = self.nets[0](x)
        for n in self.nets[1:]:
            y = y + n(x)
        return y / len(self.nets) if len(self.nets) > 1 else y
