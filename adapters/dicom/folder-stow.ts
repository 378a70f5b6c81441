/**
 * A STOW-RS stand-in that files instances into a folder instead of a PACS (`mslesion analyze --out`, research
 * exports): <dir>/<Modality>_<SeriesNumber>/<SOPInstanceUID>.dcm, written atomically. Storing the same instance
 * again overwrites it (the derived objects' UIDs are deterministic, so re-runs replace, never duplicate).
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import type { StowClient } from './derived/pacs-publisher.ts';
import { parsePart10 } from './part10.ts';
import { str } from './dataset.ts';

export class FolderStowClient implements StowClient {
  readonly dir: string;
  /** Paths written so far, in order. */
  readonly written: string[] = [];

  constructor(dir: string) {
    this.dir = dir;
  }

  async stowInstances(instances: readonly Uint8Array[]): ReturnType<StowClient['stowInstances']> {
    const outcomes = [];
    for (const bytes of instances) {
      let ds;
      try {
        ds = parsePart10(bytes, { headerOnly: true }).dataset;
      } catch (e) {
        if (!(e instanceof DomainError)) throw e;
        outcomes.push({ stored: false, failureReason: 0xc000, error: { code: e.code, message: e.message } });
        continue;
      }
      const sop = str(ds, 'SOPInstanceUID') ?? '';
      const cls = str(ds, 'SOPClassUID');
      if (!/^[0-9.]{1,64}$/.test(sop)) {
        outcomes.push({
          stored: false,
          failureReason: 0xc000,
          error: { code: 'DICOM.INVALID_UID', message: 'no valid SOP Instance UID' },
        });
        continue;
      }
      const series = `${(str(ds, 'Modality') ?? 'OT').replace(/[^A-Z]/g, '')}_${(str(ds, 'SeriesNumber') ?? '0').replace(/\D/g, '')}`;
      const folder = join(this.dir, series);
      await mkdir(folder, { recursive: true });
      const path = join(folder, `${sop}.dcm`);
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, path);
      this.written.push(path);
      outcomes.push({
        stored: true,
        sopInstanceUid: sop,
        ...(cls === undefined ? {} : { sopClassUid: cls }),
      });
    }
    return { instances: outcomes };
  }
}
