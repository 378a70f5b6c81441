/**
 * Test helper: runs dciodvfy (Debian dicom3tools) on a file and returns its Error and Warning lines.
 */
import { spawnSync } from 'node:child_process';

export function dciodvfy(path: string): { errors: string[]; warnings: string[] } {
  const r = spawnSync('dciodvfy', [path], { encoding: 'utf8' });
  if (r.error !== undefined)
    throw new Error(`dciodvfy failed to run (apt-get install dicom3tools): ${r.error.message}`);
  const lines = `${r.stdout}\n${r.stderr}`.split('\n');
  return {
    errors: lines.filter((l) => l.startsWith('Error')),
    warnings: lines.filter((l) => l.startsWith('Warning')),
  };
}
