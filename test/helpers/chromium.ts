/**
 * Real headless Chromium for browser tests (Debian `chromium`), driven over the Chrome DevTools Protocol with
 * Node's own WebSocket — no browser-automation package. Fresh user-data-dir per browser; everything is removed
 * on close.
 *
 *   const browser = await launchChromium();
 *   const page = await browser.newPage({ width: 1280, height: 900 });
 *   await page.goto(url); await page.waitFor('document.body.dataset.ready === "true"');
 *   const png = await page.screenshot(); await browser.close();
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? 'chromium';

/** True when a Chromium binary is installed. */
export function hasChromium(): boolean {
  return spawnSync(CHROMIUM, ['--version'], { stdio: 'ignore' }).status === 0;
}

interface CdpMessage {
  readonly id?: number;
  readonly method?: string;
  readonly sessionId?: string;
  readonly params?: Record<string, unknown>;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly message: string };
}

export interface Page {
  goto(url: string): Promise<void>;
  /** Reloads the page and resolves once the new document has loaded (so nothing reads the old one). */
  reload(): Promise<void>;
  /** Evaluates an expression in the page (promises awaited) and returns its JSON value. */
  evaluate<T>(expression: string): Promise<T>;
  /** Polls `expression` until it is truthy. */
  waitFor(expression: string, timeoutMs?: number): Promise<void>;
  /** PNG of the whole page (beyond the viewport). */
  screenshot(): Promise<Buffer>;
  /** Console messages and uncaught exceptions seen so far. */
  readonly console: string[];
  close(): Promise<void>;
}

export interface Browser {
  newPage(viewport?: { width: number; height: number }): Promise<Page>;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  const userDir = mkdtempSync(join(tmpdir(), 'mslesion-chromium-'));
  const proc: ChildProcess = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-default-apps',
      '--disable-extensions',
      '--disable-sync',
      '--no-first-run',
      '--no-default-browser-check',
      '--mute-audio',
      '--hide-scrollbars',
      `--user-data-dir=${userDir}`,
      '--remote-debugging-port=0',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const wsUrl = await new Promise<string>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      reject(new Error(`chromium did not start: ${seen.slice(-500)}`));
    }, 30_000);
    proc.stderr?.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited (${String(code)}): ${seen.slice(-500)}`));
    });
  });
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => {
      resolve();
    });
    ws.addEventListener('error', () => {
      reject(new Error('cannot connect to chromium'));
    });
  });
  let next = 0;
  const pending = new Map<
    number,
    { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  const listeners = new Set<(m: CdpMessage) => void>();
  ws.addEventListener('message', (ev: MessageEvent) => {
    const msg = JSON.parse(String(ev.data)) as CdpMessage;
    if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error !== undefined) p?.reject(new Error(msg.error.message));
      else p?.resolve(msg.result ?? {});
    } else for (const l of listeners) l(msg);
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      next += 1;
      pending.set(next, { resolve, reject });
      ws.send(
        JSON.stringify({ id: next, method, params, ...(sessionId === undefined ? {} : { sessionId }) }),
      );
    });
  const waitEvent = (sessionId: string, method: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(l);
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const l = (m: CdpMessage): void => {
        if (m.sessionId === sessionId && m.method === method) {
          clearTimeout(timer);
          listeners.delete(l);
          resolve();
        }
      };
      listeners.add(l);
    });

  return {
    async newPage(viewport = { width: 1280, height: 900 }) {
      const { targetId } = (await send('Target.createTarget', { url: 'about:blank' })) as {
        targetId: string;
      };
      const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as {
        sessionId: string;
      };
      const consoleLines: string[] = [];
      listeners.add((m) => {
        if (m.sessionId !== sessionId) return;
        if (m.method === 'Runtime.consoleAPICalled')
          consoleLines.push(
            ((m.params?.args as { value?: unknown }[] | undefined) ?? [])
              .map((a) => String(a.value))
              .join(' '),
          );
        if (m.method === 'Runtime.exceptionThrown')
          consoleLines.push(`exception: ${JSON.stringify(m.params)}`);
      });
      await send('Page.enable', {}, sessionId);
      await send('Runtime.enable', {}, sessionId);
      await send(
        'Emulation.setDeviceMetricsOverride',
        { width: viewport.width, height: viewport.height, deviceScaleFactor: 1, mobile: false },
        sessionId,
      );
      const evaluate = async <T>(expression: string): Promise<T> => {
        const r = (await send(
          'Runtime.evaluate',
          { expression, awaitPromise: true, returnByValue: true },
          sessionId,
        )) as {
          result: { value?: unknown };
          exceptionDetails?: { text: string; exception?: { description?: string } };
        };
        if (r.exceptionDetails !== undefined)
          throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
        return r.result.value as T;
      };
      return {
        console: consoleLines,
        async goto(url) {
          const loaded = waitEvent(sessionId, 'Page.loadEventFired', 30_000);
          await send('Page.navigate', { url }, sessionId);
          await loaded;
        },
        async reload() {
          const loaded = waitEvent(sessionId, 'Page.loadEventFired', 30_000);
          await send('Page.reload', {}, sessionId);
          await loaded;
        },
        evaluate,
        async waitFor(expression, timeoutMs = 30_000) {
          const t0 = Date.now();
          for (;;) {
            const ok = await evaluate<boolean>(`Boolean(${expression})`).catch(() => false);
            if (ok) return;
            if (Date.now() - t0 > timeoutMs)
              throw new Error(
                `timed out waiting for ${expression} at ${await evaluate<string>('location.href').catch(() => '?')}; ` +
                  `page: ${await evaluate<string>('document.body ? document.body.innerText.slice(0, 500) : ""').catch(() => '?')}; ` +
                  `console: ${consoleLines.join(' | ')}`,
              );
            await new Promise((r) => setTimeout(r, 100));
          }
        },
        async screenshot() {
          const metrics = (await send('Page.getLayoutMetrics', {}, sessionId)) as {
            cssContentSize: { width: number; height: number };
          };
          const r = (await send(
            'Page.captureScreenshot',
            {
              format: 'png',
              captureBeyondViewport: true,
              clip: {
                x: 0,
                y: 0,
                width: Math.ceil(viewport.width),
                height: Math.ceil(metrics.cssContentSize.height),
                scale: 1,
              },
            },
            sessionId,
          )) as { data: string };
          return Buffer.from(r.data, 'base64');
        },
        async close() {
          await send('Target.closeTarget', { targetId });
        },
      };
    },
    async close() {
      await send('Browser.close').catch(() => undefined);
      ws.close();
      await new Promise<void>((resolve) => {
        if (proc.exitCode !== null) resolve();
        else {
          const t = setTimeout(() => {
            proc.kill('SIGKILL');
          }, 5000);
          proc.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
        }
      });
      rmSync(userDir, { recursive: true, force: true });
    },
  };
}
