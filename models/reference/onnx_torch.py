"""
Runs an ONNX graph of the ops nnU-Net-style networks use with plain torch functions (eager, CPU), so the
reference sliding window and the torch side of the benchmark execute *the same network* as onnxruntime does,
weights read from the ONNX file. Supported ops: Conv, ConvTranspose, InstanceNormalization, BatchNormalization,
LeakyRelu, Relu, Sigmoid, Softmax, Concat, Add, Sub, Mul, Div, Identity, Constant.
"""
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node):
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _padding(attrs, nd):
    pads = list(attrs.get('pads', [0] * (2 * nd)))
    if attrs.get('auto_pad', 'NOTSET') not in ('NOTSET', 'VALID'):
        raise ValueError('auto_pad SAME_* is not supported by the reference executor')
    begin, end = pads[:nd], pads[nd:]
    if begin != end:
        raise ValueError('asymmetric padding is not supported by the reference executor')
    return begin


class OnnxTorch:
    def __init__(self, path):
        model = onnx.load(path)
        g = model.graph
        self.weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
        self.nodes = list(g.node)
        self.input_name = [i.name for i in g.input if i.name not in self.weights][0]
        self.output_name = g.output[0].name

    @torch.no_grad()
    def __call__(self, x):
        env = dict(self.weights)
        env[self.input_name] = x
        for node in self.nodes:
            a = _attrs(node)
            ins = [env[n] if n else None for n in node.input]
            op = node.op_type
            if op == 'Conv':
                nd = ins[0].dim() - 2
                conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
                y = conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, stride=a.get('strides', 1),
                         padding=_padding(a, nd), dilation=a.get('dilations', 1), groups=a.get('group', 1))
            elif op == 'ConvTranspose':
                nd = ins[0].dim() - 2
                conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
                y = conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, stride=a.get('strides', 1),
                         padding=_padding(a, nd), output_padding=a.get('output_padding', 0),
                         groups=a.get('group', 1), dilation=a.get('dilations', 1))
            elif op == 'InstanceNormalization':
                y = F.instance_norm(ins[0], weight=ins[1], bias=ins[2], eps=a.get('epsilon', 1e-5))
            elif op == 'BatchNormalization':
                y = F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, a.get('epsilon', 1e-5))
            elif op == 'LeakyRelu':
                y = F.leaky_relu(ins[0], a.get('alpha', 0.01))
            elif op == 'Relu':
                y = F.relu(ins[0])
            elif op == 'Sigmoid':
                y = torch.sigmoid(ins[0])
            elif op == 'Softmax':
                y = torch.softmax(ins[0], a.get('axis', -1))
            elif op == 'Concat':
                y = torch.cat(ins, a['axis'])
            elif op == 'Add':
                y = ins[0] + ins[1]
            elif op == 'Sub':
                y = ins[0] - ins[1]
            elif op == 'Mul':
                y = ins[0] * ins[1]
            elif op == 'Div':
                y = ins[0] / ins[1]
            elif op == 'Identity':
                y = ins[0]
            elif op == 'Constant':
                y = torch.from_numpy(numpy_helper.to_array(a['value']).copy())
            else:
                raise ValueError(f'op {op} is not supported by the reference executor')
            env[node.output[0]] = y
        return env[self.output_name]


def load(path):
    return OnnxTorch(path)


if __name__ == '__main__':
    import sys

    net = OnnxTorch(sys.argv[1])
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 16, 24, 24)).astype(np.float32))
    print(net(x).shape)
