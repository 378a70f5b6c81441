// Runs each exported ONNX variant with onnxruntime-node on the patch saved by export.py and compares it with
// the torch output of the same network (max abs difference of the logits); also runs a batch of 2 with another
// spatial size to check the dynamic axes.  node models/training/check_onnx.cjs
'use strict';
const { readFileSync } = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');

const here = __dirname;
const modelDir = path.join(here, '..', 'mslesion-unet3d-v1');
const work = path.join(here, 'work');

function readNpy(file) {
  const buf = readFileSync(file);
  const hlen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + hlen).toString('latin1');
  if (!header.includes("'descr': '<f4'")) throw new Error(`${file}: expected float32, got ${header}`);
  const shape = header
    .match(/'shape': \(([^)]*)\)/)[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const off = 10 + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { shape, data };
}

async function main() {
  const manifest = JSON.parse(readFileSync(path.join(modelDir, 'manifest.json'), 'utf8'));
  let worst = 0;
  for (const v of manifest.variants) {
    const session = await ort.InferenceSession.create(path.join(modelDir, v.file), { intraOpNumThreads: 1 });
    const x = readNpy(path.join(work, `onnxcheck_${v.id}_in.npy`));
    const y = readNpy(path.join(work, `onnxcheck_${v.id}_out.npy`));
    const out = await session.run({ [manifest.input.name]: new ort.Tensor('float32', x.data, x.shape) });
    const got = out[manifest.output.name];
    let d = 0;
    for (let i = 0; i < y.data.length; i++) d = Math.max(d, Math.abs(got.data[i] - y.data[i]));
    worst = Math.max(worst, d);
    const c = v.channels.length;
    const shape2 = [2, c, 32, 40, 56];
    const z = new Float32Array(shape2.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i * 0.37));
    const out2 = await session.run({ [manifest.input.name]: new ort.Tensor('float32', z, shape2) });
    console.log(
      `${v.id}: dims ${got.dims.join('x')}, max |onnx - torch| = ${d.toExponential(2)}; dynamic [${shape2}] -> [${out2[manifest.output.name].dims}]`,
    );
  }
  if (worst > 1e-3) {
    console.error(`FAIL: max difference ${worst}`);
    process.exit(1);
  }
  console.log('OK');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
