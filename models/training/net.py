"""Compact nnU-Net-style 3D U-Net (instance norm, leaky ReLU, deep supervision heads)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.c1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=True)
        self.n1 = nn.InstanceNorm3d(cout, affine=True)
        self.c2 = nn.Conv3d(cout, cout, 3, padding=1, bias=True)
        self.n2 = nn.InstanceNorm3d(cout, affine=True)

    def forward(self, x):
        x = F.leaky_relu(self.n1(self.c1(x)), 0.01)
        return F.leaky_relu(self.n2(self.c2(x)), 0.01)


class UNet3D(nn.Module):
    """Encoder 16-32-64-128 (strided-conv downsampling), transposed-conv upsampling, 2-class logits.

    forward() returns the full-resolution logits; forward_ds() also returns the two coarser deep-supervision
    outputs used only in training.
    """

    def __init__(self, in_ch=3, feats=(16, 32, 64, 128), n_cls=2):
        super().__init__()
        f = feats
        self.enc = nn.ModuleList([ConvBlock(in_ch, f[0])] + [ConvBlock(f[i - 1], f[i], stride=2) for i in range(1, len(f))])
        self.up = nn.ModuleList([nn.ConvTranspose3d(f[i], f[i - 1], 2, stride=2) for i in range(len(f) - 1, 0, -1)])
        self.dec = nn.ModuleList([ConvBlock(2 * f[i - 1], f[i - 1]) for i in range(len(f) - 1, 0, -1)])
        self.head = nn.Conv3d(f[0], n_cls, 1)
        self.ds_heads = nn.ModuleList([nn.Conv3d(f[2], n_cls, 1), nn.Conv3d(f[1], n_cls, 1)])

    def _run(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
        x = skips.pop()
        decs = []
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], 1))
            decs.append(x)
        return decs

    def forward(self, x):
        return self.head(self._run(x)[-1])

    def forward_ds(self, x):
        d = self._run(x)
        return [self.head(d[-1]), self.ds_heads[1](d[-2]), self.ds_heads[0](d[-3])]


class VariantWrapper(nn.Module):
    """Takes only the variant's channels and fills the missing ones with 0 (as in modality-dropout training)."""

    def __init__(self, net, present, n_total=3):
        super().__init__()
        self.net = net
        self.present = list(present)
        self.n_total = n_total

    def forward(self, x):
        if len(self.present) == self.n_total:
            return self.net(x)
        n, _, d, h, w = x.shape
        z = torch.zeros_like(x[:, :1])
        chans = []
        k = 0
        for c in range(self.n_total):
            if c in self.present:
                chans.append(x[:, k:k + 1])
                k += 1
            else:
                chans.append(z)
        return self.net(torch.cat(chans, 1))
