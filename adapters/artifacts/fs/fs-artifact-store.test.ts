import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../../domain/errors.ts';
import { FsArtifactStore } from './fs-artifact-store.ts';

const ID = '3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e';
const code = (c: string) => (e: unknown) => e instanceof DomainError && e.code === c;

describe('FsArtifactStore', () => {
  let root: string;
  let store: FsArtifactStore;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'mslesion-art-'));
    store = new FsArtifactStore(join(root, 'artifacts'));
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('stores, reads back and lists artifacts with size and sha256', async () => {
    const pdf = new TextEncoder().encode('%PDF-1.7 test');
    const ref = await store.put(ID, 'report.pdf', pdf, 'application/pdf');
    assert.deepEqual(ref, {
      name: 'report.pdf',
      contentType: 'application/pdf',
      bytes: pdf.length,
      sha256: createHash('sha256').update(pdf).digest('hex'),
    });
    const got = await store.get(ID, 'report.pdf');
    assert.deepEqual(got?.ref, ref);
    assert.deepEqual(got.data, pdf);
    await store.put(ID, 'lesion_mask.nii.gz', new Uint8Array([1, 2, 3]), 'application/gzip');
    assert.deepEqual(
      (await store.list(ID)).map((r) => r.name),
      ['lesion_mask.nii.gz', 'report.pdf'],
    );
    assert.equal(await store.get(ID, 'missing.bin'), undefined);
    assert.deepEqual(await store.list('00000000-0000-4000-8000-000000000000'), []);
  });

  it('replaces atomically; concurrent readers see whole versions', async () => {
    const a = new Uint8Array(200_000).fill(7);
    const b = new Uint8Array(300_000).fill(9);
    await store.put(ID, 'overlay.png', a, 'image/png');
    const reads: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      reads.push(store.put(ID, 'overlay.png', i % 2 === 0 ? b : a, 'image/png'));
      reads.push(
        store.get(ID, 'overlay.png').then((g) => {
          assert.ok(g);
          const expected = g.ref.bytes === a.length ? a : b;
          assert.equal(g.data.length, expected.length);
          assert.equal(g.data[0], expected[0]);
          assert.equal(createHash('sha256').update(g.data).digest('hex'), g.ref.sha256);
        }),
      );
    }
    await Promise.all(reads);
    const final = await store.put(ID, 'overlay.png', b, 'image/png');
    const objects = readdirSync(join(store.root, ID, 'objects'));
    assert.ok(objects.includes(final.sha256));
    assert.equal(objects.length, 4, 'one object per distinct content (2 here, 2 from the first test)');
    assert.ok(!readdirSync(join(store.root, ID)).some((f) => f.endsWith('.tmp')), 'no temp files left');
  });

  it('rejects path traversal and odd names before touching the disk', async () => {
    for (const name of ['../x', '..', 'a/b', 'a\\b', '.hidden', '', 'x'.repeat(200), 'ok..pdf', 'nul\u0000'])
      await assert.rejects(
        store.put(ID, name, new Uint8Array(1), 'text/plain'),
        code('ARTIFACT.BAD_NAME'),
        name,
      );
    for (const id of ['../../etc', 'x', `${ID}/..`])
      await assert.rejects(store.get(id, 'report.pdf'), code('ARTIFACT.BAD_ID'), id);
    await assert.rejects(
      store.put(ID, 'a.txt', new Uint8Array(1), 'not a type'),
      code('ARTIFACT.BAD_CONTENT_TYPE'),
    );
    assert.ok(!existsSync(join(root, 'x')));
  });

  it('removes all artifacts of an analysis and answers ping', async () => {
    await store.ping();
    await store.removeAll(ID);
    assert.deepEqual(await store.list(ID), []);
    await store.removeAll(ID);
  });
});
