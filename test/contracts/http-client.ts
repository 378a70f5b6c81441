/**
 * A test client for the REST API that validates every response against the contract (status declared,
 * media type declared, JSON body valid) before handing it to the test.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { loadContract, type Contract } from '../../api/contract.ts';

export interface CallResult {
  readonly status: number;
  readonly headers: Headers;
  readonly contentType: string | undefined;
  /** Parsed JSON for JSON media types, else undefined. */
  readonly json: unknown;
  readonly bytes: Uint8Array;
}

export interface TestServer {
  readonly baseUrl: string;
  readonly contract: Contract;
  /** Calls `path` and validates the response as operation `operationId` (undefined: no matching operation). */
  call(operationId: string | undefined, path: string, init?: RequestInit): Promise<CallResult>;
  close(): Promise<void>;
}

let shared: Contract | undefined;

export async function serve(app: Express): Promise<TestServer> {
  const contract = (shared ??= loadContract());
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl,
    contract,
    async call(operationId, path, init) {
      const r = await fetch(baseUrl + path, init);
      const bytes = new Uint8Array(await r.arrayBuffer());
      const contentType = r.headers.get('content-type') ?? undefined;
      const base = contentType?.split(';')[0].trim();
      const isJson = base !== undefined && (base === 'application/json' || base.endsWith('+json'));
      const json: unknown =
        isJson && bytes.length > 0 ? JSON.parse(new TextDecoder().decode(bytes)) : undefined;
      if (operationId !== undefined) {
        const problems = contract.validateResponse(
          operationId,
          r.status,
          bytes.length > 0 ? contentType : undefined,
          json,
        );
        assert.deepEqual(problems, [], `${operationId} ${r.status} response violates the contract`);
      } else if (r.status >= 400) {
        // errors outside any operation are OperationOutcomes too
        assert.equal((json as { resourceType?: string } | undefined)?.resourceType, 'OperationOutcome');
      }
      return { status: r.status, headers: r.headers, contentType, json, bytes };
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => {
          if (e === undefined) resolve();
          else reject(e);
        });
      }),
  };
}

/** The error code of an OperationOutcome body. */
export function errorCode(body: unknown): string | undefined {
  const o = body as { issue?: { details?: { coding?: { code?: string }[] } }[] } | undefined;
  return o?.issue?.[0]?.details?.coding?.[0]?.code;
}
