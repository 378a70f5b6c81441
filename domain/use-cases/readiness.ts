/** Readiness: every dependency the service needs to do its work answers within a time limit. */
import type { Clock } from '../ports/clock.port.ts';

export interface ReadinessCheck {
  /** e.g. 'store', 'queue', 'pacs', 'models'. */
  readonly name: string;
  /** Resolves when the dependency is usable; throws (with a reason) when it is not. */
  check(signal: AbortSignal): Promise<void>;
}

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: readonly CheckResult[];
}

export async function checkReadiness(
  deps: { readonly clock: Clock; readonly checks: readonly ReadinessCheck[] },
  timeoutMs: number,
): Promise<ReadinessReport> {
  const results = await Promise.all(
    deps.checks.map(async (c): Promise<CheckResult> => {
      const started = deps.clock.now().getTime();
      const abort = new AbortController();
      const elapsed = (): number => deps.clock.now().getTime() - started;
      try {
        const timer = deps.clock.sleep(timeoutMs, abort.signal).then(() => {
          if (!abort.signal.aborted) throw new Error(`no answer within ${timeoutMs} ms`);
        });
        await Promise.race([c.check(abort.signal), timer]);
        return { name: c.name, ok: true, ms: elapsed() };
      } catch (e) {
        return { name: c.name, ok: false, ms: elapsed(), error: e instanceof Error ? e.message : String(e) };
      } finally {
        abort.abort();
      }
    }),
  );
  return { ready: results.every((r) => r.ok), checks: results };
}
