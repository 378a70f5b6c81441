/**
 * ArtifactStore on the local filesystem. Layout under the root:
 *   <analysisId>/<name>.ref.json      the reference (content type, size, sha256) — what `get`/`list` read
 *   <analysisId>/objects/<sha256>     the bytes, content-addressed
 * A put writes the object (temp file, fsync, rename), then swaps the reference in with a single rename, so a
 * reader sees the old artifact or the new one, never a mix or a partial file. Objects a replaced reference
 * pointed to are kept until `removeAll` (deleting them could race a concurrent put of the same bytes; a
 * re-run writes identical outputs, which share one object). Names and ids are checked
 * before any path is built (no separators, no `..`), so nothing can escape the root.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainError } from '../../../domain/errors.ts';
import type { ArtifactRef } from '../../../domain/model/analysis.ts';
import {
  isValidArtifactName,
  type ArtifactStore,
  type StoredArtifact,
} from '../../../domain/ports/artifact-store.port.ts';

const ID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const REF_SUFFIX = '.ref.json';
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(;.*)?$/i;

function checkId(id: string): void {
  if (!ID.test(id))
    throw new DomainError('ARTIFACT.BAD_ID', 'an analysis id is a UUID', { issueType: 'value' });
}

function checkName(name: string): void {
  if (!isValidArtifactName(name))
    throw new DomainError('ARTIFACT.BAD_NAME', 'artifact names are plain file names (A–Z a–z 0–9 . _ -)', {
      issueType: 'value',
    });
}

function isMissing(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === 'ENOENT';
}

async function writeAtomically(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

export class FsArtifactStore implements ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  #dir(id: string): string {
    checkId(id);
    return join(this.root, id.toLowerCase());
  }

  async #readRef(dir: string, name: string): Promise<ArtifactRef | undefined> {
    try {
      return JSON.parse(await readFile(join(dir, name + REF_SUFFIX), 'utf8')) as ArtifactRef;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async put(analysisId: string, name: string, data: Uint8Array, contentType: string): Promise<ArtifactRef> {
    const dir = this.#dir(analysisId);
    checkName(name);
    if (!CONTENT_TYPE.test(contentType))
      throw new DomainError('ARTIFACT.BAD_CONTENT_TYPE', `not a media type: ${contentType}`, {
        issueType: 'value',
      });
    const sha256 = createHash('sha256').update(data).digest('hex');
    const objects = join(dir, 'objects');
    await mkdir(objects, { recursive: true });
    const object = join(objects, sha256);
    const exists = await stat(object).then(
      (s) => s.size === data.byteLength,
      () => false,
    );
    if (!exists) await writeAtomically(object, data);
    const ref: ArtifactRef = { name, contentType, bytes: data.byteLength, sha256 };
    await writeAtomically(join(dir, name + REF_SUFFIX), new TextEncoder().encode(JSON.stringify(ref)));
    return ref;
  }

  async get(analysisId: string, name: string): Promise<StoredArtifact | undefined> {
    const dir = this.#dir(analysisId);
    checkName(name);
    // A concurrent put may replace the object between the two reads: read the reference again then.
    for (let attempt = 0; attempt < 3; attempt++) {
      const ref = await this.#readRef(dir, name);
      if (ref === undefined) return undefined;
      try {
        const data = new Uint8Array(await readFile(join(dir, 'objects', ref.sha256)));
        return { ref, data };
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
    }
    throw new DomainError('ARTIFACT.UNREADABLE', `artifact ${name} kept changing while being read`, {
      issueType: 'transient',
    });
  }

  async list(analysisId: string): Promise<readonly ArtifactRef[]> {
    const dir = this.#dir(analysisId);
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
    const refs: ArtifactRef[] = [];
    for (const f of entries.filter((e) => e.endsWith(REF_SUFFIX)).sort()) {
      const ref = await this.#readRef(dir, f.slice(0, -REF_SUFFIX.length));
      if (ref !== undefined) refs.push(ref);
    }
    return refs.sort((a, b) => a.name.localeCompare(b.name));
  }

  async removeAll(analysisId: string): Promise<void> {
    await rm(this.#dir(analysisId), { recursive: true, force: true });
  }

  async ping(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const probe = join(this.root, `.ping-${randomBytes(4).toString('hex')}`);
    await writeAtomically(probe, new Uint8Array([1]));
    await unlink(probe);
  }
}
