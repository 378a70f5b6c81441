/** A readiness check that an HTTP service answers (the PACS's DICOMweb root, a FHIR server …). */
import type { ReadinessCheck } from '../../domain/use-cases/readiness.ts';

export interface HttpProbeOptions {
  readonly name: string;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Ready when the URL answers with a status below 500 other than 401/403 (which mean bad credentials). */
export function httpProbe(options: HttpProbeOptions): ReadinessCheck {
  return {
    name: options.name,
    async check(signal) {
      const r = await fetch(options.url, { headers: options.headers, signal, redirect: 'manual' });
      await r.body?.cancel();
      if (r.status === 401 || r.status === 403)
        throw new Error(`${options.name} refused the credentials (${r.status})`);
      if (r.status >= 500) throw new Error(`${options.name} answered ${r.status}`);
    },
  };
}

export function basicAuth(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
}
