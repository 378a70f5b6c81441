/**
 * ImageSource over a directory of DICOM Part-10 files (recursive; any names; one or more studies), for the
 * CLI, the demo and the DICOM inbox. The index is built by the fast structural scan (adapters/dicom/part10.ts,
 * no dcmjs) and refreshed on every findStudy: only files that are new or changed (size, mtime) are read again.
 * Files that are not DICOM, or are broken, are listed in `skipped` and otherwise ignored; a series is
 * described by parsing one of its instances (header only) and loaded by parsing all of them.
 *
 * Layout 'by-study' (used by the inbox: <root>/<StudyInstanceUID>/…) looks only in the study's folder.
 *
 * Codes: STUDY.NOT_FOUND, SERIES.NOT_FOUND ('not-found'); FOLDER.UNREADABLE ('not-found'); parse errors of
 * the instances (DICOM.*) when a series is loaded.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type {
  ImageSlice,
  ImageSource,
  LoadedSeries,
  LoadProgress,
  SeriesDescriptor,
  StudyDescriptor,
} from '../../domain/ports/image-source.port.ts';
import { identityOf, imageSlicesOf, seriesAttributesOf, studyDescriptorOf, studyFieldsOf } from './image.ts';
import { parsePart10, scanPart10 } from './part10.ts';

export interface IndexedInstance {
  readonly path: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly sopClassUid?: string;
  readonly modality?: string;
  readonly seriesNumber?: number;
  readonly instanceNumber?: number;
  readonly numberOfFrames: number;
  readonly transferSyntaxUid: string;
}

export interface SkippedFile {
  readonly path: string;
  readonly code: string;
  readonly reason: string;
}

export interface FolderSourceOptions {
  /** 'any' (default): every file under root; 'by-study': only <root>/<StudyInstanceUID>/. */
  readonly layout?: 'any' | 'by-study';
  /** Ignore files whose names match (default: dot files and *.tmp / *.partial). */
  readonly ignore?: RegExp;
}

interface CacheEntry {
  readonly size: number;
  readonly mtimeMs: number;
  readonly result: IndexedInstance | SkippedFile;
}

const DEFAULT_IGNORE = /(^|[\\/])\.|\.(tmp|partial)$/i;

function toInt(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? Math.round(n) : undefined;
}

function isSkipped(r: IndexedInstance | SkippedFile): r is SkippedFile {
  return 'code' in r;
}

export class FolderImageSource implements ImageSource {
  readonly root: string;
  readonly #layout: 'any' | 'by-study';
  readonly #ignore: RegExp;
  readonly #cache = new Map<string, CacheEntry>();
  #skipped: SkippedFile[] = [];

  constructor(root: string, options: FolderSourceOptions = {}) {
    this.root = root;
    this.#layout = options.layout ?? 'any';
    this.#ignore = options.ignore ?? DEFAULT_IGNORE;
  }

  /** Files found broken or not DICOM at the last scan (relative paths). */
  get skipped(): readonly SkippedFile[] {
    return this.#skipped;
  }

  async #files(dir: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (dir === this.root || this.#layout === 'by-study') {
        const code = (e as { code?: string }).code;
        if (code === 'ENOENT' && dir !== this.root) return;
        throw new DomainError('FOLDER.UNREADABLE', `cannot read the folder ${dir}`, {
          issueType: 'not-found',
          cause: e,
        });
      }
      return;
    }
    for (const ent of entries) {
      const p = join(dir, ent.name);
      if (this.#ignore.test(ent.name)) continue;
      if (ent.isDirectory()) await this.#files(p, out);
      else if (ent.isFile()) out.push(p);
    }
  }

  async #scanFile(path: string): Promise<IndexedInstance | SkippedFile> {
    let st;
    try {
      st = await stat(path);
    } catch {
      return { path, code: 'FILE.VANISHED', reason: 'the file disappeared during the scan' };
    }
    const cached = this.#cache.get(path);
    if (cached !== undefined && cached.size === st.size && cached.mtimeMs === st.mtimeMs)
      return cached.result;
    let result: IndexedInstance | SkippedFile;
    try {
      const bytes = await readFile(path);
      const scan = scanPart10(bytes);
      const v = scan.values;
      if (
        v.StudyInstanceUID === undefined ||
        v.SeriesInstanceUID === undefined ||
        v.SOPInstanceUID === undefined
      )
        result = {
          path,
          code: 'DICOM.NOT_AN_INSTANCE',
          reason: 'no Study/Series/SOP Instance UID (e.g. a DICOMDIR)',
        };
      else {
        const seriesNumber = toInt(v.SeriesNumber);
        const instanceNumber = toInt(v.InstanceNumber);
        result = {
          path,
          studyInstanceUid: v.StudyInstanceUID,
          seriesInstanceUid: v.SeriesInstanceUID,
          sopInstanceUid: v.SOPInstanceUID,
          ...(v.SOPClassUID === undefined ? {} : { sopClassUid: v.SOPClassUID }),
          ...(v.Modality === undefined ? {} : { modality: v.Modality }),
          ...(seriesNumber === undefined ? {} : { seriesNumber }),
          ...(instanceNumber === undefined ? {} : { instanceNumber }),
          numberOfFrames: Math.max(1, toInt(v.NumberOfFrames) ?? 1),
          transferSyntaxUid: scan.transferSyntaxUid,
        };
      }
    } catch (e) {
      if (isDomainError(e)) result = { path, code: e.code, reason: e.message };
      else if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string')
        result = { path, code: 'FILE.UNREADABLE', reason: `${e.code}: cannot read the file` };
      else throw e;
    }
    this.#cache.set(path, { size: st.size, mtimeMs: st.mtimeMs, result });
    return result;
  }

  /** Scans the folder (or the study's folder) and returns the instances found. */
  async scan(studyInstanceUid?: string): Promise<IndexedInstance[]> {
    const base =
      this.#layout === 'by-study' && studyInstanceUid !== undefined
        ? join(this.root, studyInstanceUid)
        : this.root;
    const files: string[] = [];
    await this.#files(base, files);
    files.sort();
    const found: IndexedInstance[] = [];
    const skipped: SkippedFile[] = [];
    for (const f of files) {
      const r = await this.#scanFile(f);
      if (isSkipped(r)) skipped.push({ ...r, path: relative(this.root, r.path) });
      else found.push(r);
    }
    this.#skipped = skipped;
    // forget files that are gone
    const present = new Set(files);
    for (const k of this.#cache.keys()) if (k.startsWith(base) && !present.has(k)) this.#cache.delete(k);
    return studyInstanceUid === undefined
      ? found
      : found.filter((x) => x.studyInstanceUid === studyInstanceUid);
  }

  /** StudyInstanceUIDs in the folder. */
  async listStudies(): Promise<string[]> {
    const all = await this.scan();
    return [...new Set(all.map((x) => x.studyInstanceUid))].sort();
  }

  async findStudy(studyInstanceUid: string): Promise<StudyDescriptor> {
    const instances = await this.scan(studyInstanceUid);
    if (instances.length === 0)
      throw new DomainError('STUDY.NOT_FOUND', `study ${studyInstanceUid} is not in the folder`, {
        issueType: 'not-found',
        details: { studyInstanceUid },
      });
    const bySeries = new Map<string, IndexedInstance[]>();
    for (const x of instances) {
      const list = bySeries.get(x.seriesInstanceUid) ?? [];
      list.push(x);
      bySeries.set(x.seriesInstanceUid, list);
    }
    let studyFields: Omit<StudyDescriptor, 'series'> | undefined;
    const series: SeriesDescriptor[] = [];
    for (const [uid, list] of bySeries) {
      list.sort((a, b) => (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0) || a.path.localeCompare(b.path));
      const head = parsePart10(await readFile(list[0].path), { headerOnly: true });
      studyFields ??= studyFieldsOf(head.dataset);
      const id = identityOf(head);
      const frames = list.reduce((s, x) => s + x.numberOfFrames, 0);
      series.push({
        studyInstanceUid,
        seriesInstanceUid: uid,
        modality: id.modality,
        ...(id.seriesNumber === undefined ? {} : { seriesNumber: id.seriesNumber }),
        sopClassUid: id.sopClassUid,
        numberOfInstances: list.length,
        ...(frames !== list.length ? { numberOfFrames: frames } : {}),
        attributes: seriesAttributesOf(head.dataset),
      });
    }
    return studyDescriptorOf(studyInstanceUid, studyFields, series);
  }

  async loadSeries(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    progress?: LoadProgress,
  ): Promise<LoadedSeries> {
    const all = await this.scan(studyInstanceUid);
    const list = all.filter((x) => x.seriesInstanceUid === seriesInstanceUid);
    if (list.length === 0)
      throw new DomainError(
        'SERIES.NOT_FOUND',
        `series ${seriesInstanceUid} is not in study ${studyInstanceUid}`,
        {
          issueType: 'not-found',
          details: { studyInstanceUid, seriesInstanceUid },
        },
      );
    const descriptor = (await this.findStudy(studyInstanceUid)).series.find(
      (s) => s.seriesInstanceUid === seriesInstanceUid,
    );
    if (descriptor === undefined)
      throw new DomainError('SERIES.NOT_FOUND', `series ${seriesInstanceUid} vanished`, {
        issueType: 'not-found',
      });
    const slices: ImageSlice[] = [];
    let done = 0;
    progress?.(0, list.length);
    for (const x of list) {
      const p = parsePart10(await readFile(x.path));
      for (const s of imageSlicesOf(p)) slices.push(s);
      done++;
      progress?.(done, list.length);
    }
    return { descriptor, slices };
  }
}
