import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile, appendFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { FIXTURES } from '../../test/helpers/fixtures.ts';
import { openModelRegistry, semanticProblems } from './fs-registry.ts';
import type { ModelManifest } from '../../domain/model/manifest.ts';

const MODELS = join(FIXTURES, 'models');
const code = (c: string) => (e: unknown) => e instanceof DomainError && e.code === c;

test('loads the committed test models with verified hashes and resolves artifacts', async () => {
  const reg = await openModelRegistry({ roots: [MODELS], strict: true });
  assert.deepEqual(
    reg.list().map((m) => m.id),
    ['tiny-sigmoid', 'tiny-unet'],
  );
  const a = reg.artifact('tiny-unet', 'flair-t2');
  assert.equal(a.key, 'tiny-unet/flair-t2');
  assert.equal(a.path, join(MODELS, 'tiny-unet', 'flair-t2.onnx'));
  assert.equal(a.inputName, 'input');
  assert.deepEqual(a.inputShape, [1, 2, 16, 24, 24]);
  assert.throws(() => reg.get('nope'), code('MODEL.NOT_FOUND'));
  assert.throws(() => reg.artifact('tiny-unet', 'nope'), code('MODEL.VARIANT_NOT_FOUND'));
  // two models for the task and no configured default
  assert.throws(() => reg.defaultFor('ms-lesion-segmentation'), code('MODEL.NO_DEFAULT'));
  assert.throws(() => reg.defaultFor('brain-extraction'), code('MODEL.NO_DEFAULT'));
  const withDefault = await openModelRegistry({
    roots: [MODELS],
    defaults: { 'ms-lesion-segmentation': 'tiny-unet' },
  });
  assert.equal(withDefault.defaultFor('ms-lesion-segmentation').id, 'tiny-unet');
  const only = await openModelRegistry({ roots: [MODELS], only: ['tiny-sigmoid'] });
  assert.equal(only.defaultFor('ms-lesion-segmentation').id, 'tiny-sigmoid');
});

test('refuses tampered files, bad manifests and missing files with coded errors', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'models-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const id of ['tiny-unet', 'tiny-sigmoid'])
    await cp(join(MODELS, id), join(root, id), { recursive: true });
  await cp(join(MODELS, 'tiny-sigmoid'), join(root, 'schema-bad'), { recursive: true });
  await cp(join(MODELS, 'tiny-sigmoid'), join(root, 'missing-file'), { recursive: true });
  await mkdir(join(root, 'not-a-model'));
  // one flipped byte at the end of an ONNX file
  await appendFile(join(root, 'tiny-unet', 'flair.onnx'), Uint8Array.of(0));
  const m = JSON.parse(await readFile(join(root, 'schema-bad', 'manifest.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  await writeFile(
    join(root, 'schema-bad', 'manifest.json'),
    JSON.stringify({ ...m, id: 'schema-bad', threshold: 2 }),
  );
  const m2 = JSON.parse(await readFile(join(root, 'missing-file', 'manifest.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  await writeFile(join(root, 'missing-file', 'manifest.json'), JSON.stringify({ ...m2, id: 'missing-file' }));
  await rm(join(root, 'missing-file', 'flair.onnx'));

  const reg = await openModelRegistry({ roots: [root] });
  assert.deepEqual(
    reg.list().map((x) => x.id),
    ['tiny-sigmoid'],
  );
  assert.deepEqual(
    reg.refused.map((r) => [r.modelId, r.error.code]),
    [
      ['missing-file', 'MODEL.FILE_MISSING'],
      ['schema-bad', 'MODEL.MANIFEST_INVALID'],
      ['tiny-unet', 'MODEL.CHECKSUM_MISMATCH'],
    ],
  );
  assert.throws(() => reg.get('tiny-unet'), code('MODEL.CHECKSUM_MISMATCH'));
  assert.match(reg.refused[1].error.message, /threshold/);
  await assert.rejects(openModelRegistry({ roots: [root], strict: true }), code('MODEL.FILE_MISSING'));
  await assert.rejects(openModelRegistry({ roots: [join(root, 'absent')] }), code('MODEL.ROOT_NOT_FOUND'));
});

test('semantic rules the schema cannot express', async () => {
  const m = JSON.parse(await readFile(join(MODELS, 'tiny-unet', 'manifest.json'), 'utf8')) as ModelManifest;
  assert.deepEqual(semanticProblems(m), []);
  const bad = {
    ...m,
    orientation: 'RLS',
    foregroundLabel: 2,
    normalization: { FLAIR: m.normalization.FLAIR, T2: { method: 'zscore', mask: 'brain', mean: 3 } },
  } as unknown as ModelManifest;
  const problems = semanticProblems(bad);
  assert.ok(problems.some((p) => p.includes('orientation')));
  assert.ok(problems.some((p) => p.includes('foregroundLabel')));
  assert.ok(problems.some((p) => p.includes('no normalization for T1')));
  assert.ok(problems.some((p) => p.includes("method 'fixed' only")));
});
