/** Health, readiness, metrics and the contract itself. */
import type { ApiUseCases } from '../use-cases.ts';
import { json, type RouteTable } from '../http.ts';

export interface SystemRouteOptions {
  readonly version: string;
  readonly startedAt: number;
  readonly document: unknown;
  /** Prometheus exposition text and its content type. */
  readonly metrics: () => Promise<{ contentType: string; text: string }>;
}

export function systemRoutes(
  useCases: Pick<ApiUseCases, 'readiness'>,
  options: SystemRouteOptions,
): RouteTable {
  return {
    getHealth: {
      handler: () =>
        Promise.resolve(
          json(200, {
            status: 'ok',
            version: options.version,
            uptimeSeconds: Math.max(0, (Date.now() - options.startedAt) / 1000),
          }),
        ),
    },
    getReadiness: {
      async handler() {
        const report = await useCases.readiness();
        return json(report.ready ? 200 : 503, report);
      },
    },
    getMetrics: {
      async handler() {
        const m = await options.metrics();
        return { status: 200, text: m.text, contentType: m.contentType };
      },
    },
    getOpenApi: { handler: () => Promise.resolve(json(200, options.document)) },
  };
}
