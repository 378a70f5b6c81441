/**
 * BulkFileStore on the local filesystem: `<root>/<jobId>/<name>` (root: `<dataDir>/bulk-export` when composed).
 * A file is written to a temporary name, fsynced and renamed, so a download never sees a partial file. Job ids
 * and file names are checked before any path is built.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { isBulkFileName, type BulkFileStore } from '../../domain/ports/bulk-export.port.ts';

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isMissing(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === 'ENOENT';
}

export class FsBulkFileStore implements BulkFileStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  #dir(jobId: string): string {
    if (!ID.test(jobId))
      throw new DomainError('BULK.BAD_JOB_ID', 'an export job id is a UUID', { issueType: 'value' });
    return join(this.root, jobId);
  }

  #path(jobId: string, name: string): string {
    if (!isBulkFileName(name))
      throw new DomainError('BULK.BAD_FILE_NAME', 'not an export file name', { issueType: 'value' });
    return join(this.#dir(jobId), name);
  }

  async write(jobId: string, name: string, data: Uint8Array): Promise<void> {
    const path = this.#path(jobId, name);
    await mkdir(this.#dir(jobId), { recursive: true });
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

  async read(jobId: string, name: string): Promise<Uint8Array | undefined> {
    try {
      const b = await readFile(this.#path(jobId, name));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async removeAll(jobId: string): Promise<void> {
    await rm(this.#dir(jobId), { recursive: true, force: true });
  }

  async ping(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const probe = join(this.root, `.probe-${randomBytes(4).toString('hex')}`);
    await writeFile(probe, 'ok');
    await unlink(probe);
  }
}
