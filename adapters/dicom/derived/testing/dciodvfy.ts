/**
 * Runs dicom3tools' dciodvfy (Debian package dicom3tools) on Part-10 bytes and splits its report into errors
 * and warnings. Tests fail on any "Error -" line.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DCIODVFY = process.env.DCIODVFY_BIN ?? '/usr/bin/dciodvfy';

export function dciodvfyAvailable(): boolean {
  return existsSync(DCIODVFY);
}

export interface DciodvfyReport {
  /** The IOD dciodvfy recognised (first line, e.g. "Segmentation"). */
  readonly iod: string;
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
  readonly output: string;
}

export async function dciodvfy(bytes: Uint8Array): Promise<DciodvfyReport> {
  const dir = await mkdtemp(join(tmpdir(), 'dciodvfy-'));
  const file = join(dir, 'object.dcm');
  try {
    await writeFile(file, bytes);
    const output = await new Promise<string>((resolve, reject) => {
      execFile(DCIODVFY, [file], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        // dciodvfy exits non-zero when it finds errors; the report is what matters
        if (err !== null && stdout === '' && stderr === '')
          reject(new Error(`dciodvfy failed: ${err.message}`));
        else resolve(`${stdout}${stderr}`);
      });
    });
    const lines = output
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    return {
      iod: lines.find((l) => !/^(Error|Warning)/.test(l)) ?? '',
      errors: lines.filter((l) => l.startsWith('Error')),
      warnings: lines.filter((l) => l.startsWith('Warning')),
      output,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
