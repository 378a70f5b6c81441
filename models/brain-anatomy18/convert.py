"""
Converts brainchop's `model30chan18cls` MeshNet (18 FreeSurfer-style labels; TensorFlow.js layers model, MIT) to
ONNX opset 17 and checks it against a NumPy re-implementation of the tfjs forward pass.

  /usr/bin/python3 models/brain-anatomy18/convert.py [--src ../shared/models/brainchop/model30chan18cls]

Writes model.onnx and reference.json here and prints the sha256 for manifest.json. The rebuild/export code is
shared with the mindgrab conversion (models/brain-mindgrab/tfjs_meshnet.py).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'brain-mindgrab'))
from tfjs_meshnet import convert  # noqa: E402

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--src', default=os.path.join(HERE, '..', '..', '..', 'shared', 'models', 'brainchop',
                                                  'model30chan18cls'))
    args = ap.parse_args()
    info = convert(args.src, HERE)
    print(f"model30chan18cls: {info['params']} parameters, {info['classes']} classes, "
          f"torch vs numpy max |diff| {info['torch_vs_numpy_max_abs']:.2e}, sha256 {info['sha256']}")
    if info['torch_vs_numpy_max_abs'] > 1e-4:
        sys.exit('torch rebuild disagrees with the NumPy tfjs reference')
