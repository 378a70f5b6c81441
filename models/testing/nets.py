"""
nnU-Net-shaped 3-D U-Nets used by the tests and the benchmark (not for clinical use).

Each encoder stage is two [conv 3³ → InstanceNorm (affine) → LeakyReLU(0.01)] blocks, the first strided (2) from
stage 1 on; the decoder upsamples with a 2³ transposed convolution, concatenates the skip and applies two blocks;
a 1³ convolution gives the class logits. This is the PlainConvUNet layout of nnU-Net v2 with conv_bias=True.
"""
import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=True)
        self.norm = nn.InstanceNorm3d(cout, affine=True, eps=1e-5)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Stage(nn.Module):
    def __init__(self, cin, cout, stride, n_convs=2):
        super().__init__()
        blocks = [ConvBlock(cin, cout, stride)] + [ConvBlock(cout, cout, 1) for _ in range(n_convs - 1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class UNet3D(nn.Module):
    def __init__(self, in_channels, num_classes, features=(4, 8, 16), final_sigmoid=False):
        super().__init__()
        self.encoder = nn.ModuleList()
        cin = in_channels
        for s, f in enumerate(features):
            self.encoder.append(Stage(cin, f, 1 if s == 0 else 2))
            cin = f
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for s in range(len(features) - 1, 0, -1):
            self.up.append(nn.ConvTranspose3d(features[s], features[s - 1], 2, stride=2, bias=True))
            self.decoder.append(Stage(2 * features[s - 1], features[s - 1], 1))
        self.head = nn.Conv3d(features[0], num_classes, 1, bias=True)
        self.final_sigmoid = final_sigmoid

    def forward(self, x):
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.decoder):
            x = dec(torch.cat((up(x), skips.pop()), 1))
        y = self.head(x)
        return torch.sigmoid(y) if self.final_sigmoid else y


def parameter_count(net):
    return sum(p.numel() for p in net.parameters())


def randomize_norms(net, gen):
    """Instance-norm affine parameters start at 1/0; make them non-trivial so tests see their effect."""
    for m in net.modules():
        if isinstance(m, nn.InstanceNorm3d):
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))


def export_onnx(net, path, in_channels, patch, input_name='input', output_name='logits'):
    net.eval()
    x = torch.zeros((1, in_channels) + tuple(patch), dtype=torch.float32)
    torch.onnx.export(
        net,
        x,
        path,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: 'N', 2: 'D', 3: 'H', 4: 'W'}, output_name: {0: 'N', 2: 'D', 3: 'H', 4: 'W'}},
        opset_version=17,
        do_constant_folding=True,
    )
