/**
 * Starts a real Orthanc PACS (Debian `orthanc` + `orthanc-dicomweb`) for a test: loopback HTTP only, the
 * DICOM port disabled, its own temporary storage, HTTP basic auth on. Stop it with `await pacs.stop()`.
 *
 *   const pacs = await startOrthanc();
 *   // pacs.dicomWebUrl = http://127.0.0.1:<port>/dicom-web, credentials pacs.username / pacs.password
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OrthancHandle {
  readonly baseUrl: string;
  readonly dicomWebUrl: string;
  readonly username: string;
  readonly password: string;
  /** Authorization header value for direct REST calls in tests. */
  readonly authorization: string;
  stop(): Promise<void>;
}

const BINARY = process.env.ORTHANC_BIN ?? '/usr/sbin/Orthanc';
const PLUGIN_DIRS = ['/usr/share/orthanc/plugins', '/usr/lib/orthanc'];

export function orthancAvailable(): boolean {
  return existsSync(BINARY);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

export async function startOrthanc(options: { maxUploadMb?: number } = {}): Promise<OrthancHandle> {
  if (!orthancAvailable())
    throw new Error(`Orthanc not installed at ${BINARY} (apt-get install orthanc orthanc-dicomweb)`);
  const dir = await mkdtemp(join(tmpdir(), 'orthanc-'));
  const port = await freePort();
  const username = 'mslesion';
  const password = 'test-' + String(port);
  const plugin = PLUGIN_DIRS.map((d) => join(d, 'libOrthancDicomWeb.so')).find((p) => existsSync(p));
  if (plugin === undefined) throw new Error('orthanc-dicomweb plugin not found');
  const config = {
    Name: 'mslesion-test-pacs',
    StorageDirectory: join(dir, 'db'),
    IndexDirectory: join(dir, 'db'),
    HttpPort: port,
    HttpBindAddress: '127.0.0.1',
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [username]: password },
    DicomServerEnabled: false,
    DicomPort: 0,
    Plugins: [plugin],
    HttpCompressionEnabled: false,
    StableAge: 1,
    DicomWeb: {
      Enable: true,
      Root: '/dicom-web/',
      EnableWado: true,
      StudiesMetadata: 'Full',
      SeriesMetadata: 'Full',
    },
    ...(options.maxUploadMb === undefined ? {} : { MaximumStorageSize: options.maxUploadMb }),
  };
  await writeFile(join(dir, 'orthanc.json'), JSON.stringify(config));
  const proc: ChildProcess = spawn(BINARY, [join(dir, 'orthanc.json')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  // Orthanc never keeps a test process alive: a suite whose setup failed before its `after` hook could stop
  // the server would otherwise wait for it forever (a CI run once hung 86 min that way); it dies with the process.
  proc.unref();
  (proc.stderr as (NodeJS.ReadableStream & { unref?: () => void }) | null)?.unref?.();
  const killOnExit = (): void => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const baseUrl = `http://127.0.0.1:${port}`;
  const authorization = 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`Orthanc exited with ${proc.exitCode}: ${stderr}`);
    try {
      const r = await fetch(`${baseUrl}/system`, { headers: { authorization } });
      if (r.ok) break;
    } catch {
      // not listening yet: retry until the deadline
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`Orthanc did not start within 30 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    baseUrl,
    dicomWebUrl: `${baseUrl}/dicom-web`,
    username,
    password,
    authorization,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
