"""
Converts brainchop's `mindgrab` skull-stripping MeshNet (TensorFlow.js layers model, MIT) to ONNX opset 17 and checks
it against a NumPy re-implementation of the tfjs forward pass.

  /usr/bin/python3 models/brain-mindgrab/convert.py [--src ../shared/models/brainchop/mindgrab]

Writes model.onnx and reference.json here and prints the sha256 for manifest.json.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tfjs_meshnet import convert  # noqa: E402

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--src', default=os.path.join(HERE, '..', '..', '..', 'shared', 'models', 'brainchop', 'mindgrab'))
    args = ap.parse_args()
    info = convert(args.src, HERE)
    print(f"mindgrab: {info['params']} parameters, {info['classes']} classes, "
          f"torch vs numpy max |diff| {info['torch_vs_numpy_max_abs']:.2e}, sha256 {info['sha256']}")
    if info['torch_vs_numpy_max_abs'] > 1e-4:
        sys.exit('torch rebuild disagrees with the NumPy tfjs reference')
