/**
 * DicomInbox on the file system: instances land in <root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm,
 * so FolderImageSource (layout 'by-study', see imageSource()) reads a study back by its UID.
 *
 * - Validation by parsing: Part-10 structure to the last byte, required identity attributes, UIDs that are
 *   valid (they become path names, so nothing else gets near the file system), accepted modalities (default
 *   MR), native (uncompressed) pixel data that decode into image planes with geometry.
 * - Atomic: bytes go to <root>/.incoming/<random>.partial and are renamed into place, so a reader never sees
 *   half a file and a crash leaves only a partial file in .incoming (removed by open()).
 * - Idempotent: an instance whose SOPInstanceUID is already stored is not written again (duplicate: true).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open as openFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type {
  DicomInbox,
  InboxInstanceOutcome,
  InboxResult,
  InboxStoreOptions,
} from '../../domain/ports/dicom-inbox.port.ts';
import { FolderImageSource } from './folder-source.ts';
import { identityOf, imageSlicesOf, isEnhancedMr, SOP_CLASS } from './image.ts';
import { parsePart10 } from './part10.ts';
import { isValidUid } from './uids.ts';

export interface FsDicomInboxOptions {
  /** Modalities accepted (default ['MR']). */
  readonly modalities?: readonly string[];
  /** Largest instance accepted, bytes (default 1 GiB). */
  readonly maxInstanceBytes?: number;
}

const FAILURE = {
  cannotUnderstand: 0xc000,
  sopClassNotSupported: 0x0122,
  transferSyntaxNotSupported: 0xc122,
  processingFailure: 0x0110,
  outOfResources: 0xa700,
} as const;

function failureFor(code: string): number {
  if (code === 'DICOM.COMPRESSED_UNSUPPORTED') return FAILURE.transferSyntaxNotSupported;
  if (
    code === 'DICOM.WRONG_MODALITY' ||
    code === 'DICOM.NOT_AN_IMAGE' ||
    code === 'DICOM.PIXEL_FORMAT_UNSUPPORTED'
  )
    return FAILURE.sopClassNotSupported;
  if (code === 'STOW.STUDY_MISMATCH') return FAILURE.processingFailure;
  if (code === 'STOW.NO_SPACE') return FAILURE.outOfResources;
  if (code.startsWith('DICOM.') || code === 'STOW.TOO_LARGE') return FAILURE.cannotUnderstand;
  return FAILURE.processingFailure;
}

export class FsDicomInbox implements DicomInbox {
  readonly root: string;
  readonly #modalities: ReadonlySet<string>;
  readonly #maxBytes: number;

  private constructor(root: string, options: FsDicomInboxOptions) {
    this.root = root;
    this.#modalities = new Set(options.modalities ?? ['MR']);
    this.#maxBytes = options.maxInstanceBytes ?? 1024 * 1024 * 1024;
  }

  /** Opens (creates) the inbox and removes partial files a crash may have left. */
  static async open(root: string, options: FsDicomInboxOptions = {}): Promise<FsDicomInbox> {
    const inbox = new FsDicomInbox(root, options);
    await mkdir(inbox.#incoming, { recursive: true });
    for (const name of await readdir(inbox.#incoming)) await rm(join(inbox.#incoming, name), { force: true });
    return inbox;
  }

  get #incoming(): string {
    return join(this.root, '.incoming');
  }

  /** An ImageSource over the stored studies. */
  imageSource(): FolderImageSource {
    return new FolderImageSource(this.root, { layout: 'by-study' });
  }

  /** Path of a stored instance (UIDs validated). */
  pathOf(studyInstanceUid: string, seriesInstanceUid: string, sopInstanceUid: string): string {
    return join(this.root, studyInstanceUid, seriesInstanceUid, `${sopInstanceUid}.dcm`);
  }

  async store(instances: readonly Uint8Array[], options: InboxStoreOptions = {}): Promise<InboxResult> {
    const out: InboxInstanceOutcome[] = [];
    for (const bytes of instances) out.push(await this.#storeOne(bytes, options));
    return { instances: out };
  }

  async #storeOne(bytes: Uint8Array, options: InboxStoreOptions): Promise<InboxInstanceOutcome> {
    let ids: {
      sopClassUid?: string;
      sopInstanceUid?: string;
      studyInstanceUid?: string;
      seriesInstanceUid?: string;
    } = {};
    try {
      if (bytes.byteLength > this.#maxBytes)
        throw new DomainError(
          'STOW.TOO_LARGE',
          `instance of ${bytes.byteLength} bytes exceeds the ${this.#maxBytes}-byte limit`,
          {
            issueType: 'too-costly',
          },
        );
      const parsed = parsePart10(bytes);
      const id = identityOf(parsed);
      ids = {
        sopClassUid: id.sopClassUid,
        sopInstanceUid: id.sopInstanceUid,
        studyInstanceUid: id.studyInstanceUid,
        seriesInstanceUid: id.seriesInstanceUid,
      };
      for (const [name, uid] of Object.entries(ids))
        if (!isValidUid(uid))
          throw new DomainError('DICOM.INVALID_UID', `${name} "${uid.slice(0, 80)}" is not a valid UID`, {
            issueType: 'invalid',
          });
      if (options.studyInstanceUid !== undefined && options.studyInstanceUid !== id.studyInstanceUid)
        throw new DomainError(
          'STOW.STUDY_MISMATCH',
          `the instance belongs to study ${id.studyInstanceUid}, not ${options.studyInstanceUid}`,
          {
            issueType: 'invalid',
          },
        );
      if (!this.#modalities.has(id.modality))
        throw new DomainError(
          'DICOM.WRONG_MODALITY',
          `modality ${id.modality} is not accepted (accepted: ${[...this.#modalities].join(', ')})`,
          {
            issueType: 'not-supported',
            details: { modality: id.modality },
          },
        );
      if (id.sopClassUid === SOP_CLASS.MRImage || isEnhancedMr(id.sopClassUid) || parsed.hasPixelData)
        imageSlicesOf(parsed);
      const target = this.pathOf(id.studyInstanceUid, id.seriesInstanceUid, id.sopInstanceUid);
      if (await exists(target)) return { ...ids, stored: true, duplicate: true };
      await this.#writeAtomically(target, bytes);
      return { ...ids, stored: true };
    } catch (e) {
      const err = isDomainError(e) ? e : storageError(e);
      return {
        ...ids,
        stored: false,
        failureReason: failureFor(err.code),
        error: { code: err.code, message: err.message },
      };
    }
  }

  async #writeAtomically(target: string, bytes: Uint8Array): Promise<void> {
    const tmp = join(this.#incoming, `${randomBytes(12).toString('hex')}.partial`);
    try {
      const fh = await openFile(tmp, 'wx');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await mkdir(join(target, '..'), { recursive: true });
      await rename(tmp, target);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function storageError(e: unknown): DomainError {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '';
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new DomainError('STOW.NO_SPACE', 'no space left to store the instance', {
      issueType: 'transient',
      cause: e,
    });
  return new DomainError('STOW.STORAGE_FAILED', `the instance could not be stored (${code || 'error'})`, {
    issueType: 'exception',
    cause: e,
  });
}
