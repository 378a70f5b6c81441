/**
 * The API's handler shape, independent of express: a route is a function from a validated request to a
 * response, looked up by the contract's operationId. Route modules (api/routes/*.ts) export RouteTables.
 */
import type { Principal } from '../domain/ports/authenticator.port.ts';

export interface ApiRequest {
  readonly operationId: string;
  /** Path parameters (validated). */
  readonly params: Readonly<Record<string, string>>;
  /** Query parameters (validated, coerced to their schema types, defaults applied). */
  readonly query: Readonly<Record<string, unknown>>;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** Parsed JSON (validated) for JSON media types, the raw bytes for others, undefined without a body. */
  readonly body: unknown;
  /** The media type of the body (without parameters), when there is one. */
  readonly mediaType?: string;
  /** Set when the operation is not public and an authenticator is configured. */
  readonly principal?: Principal;
  /** Aborts when the client went away. */
  readonly signal: AbortSignal;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Serialized as JSON with `contentType` (default application/json). */
  readonly json?: unknown;
  readonly bytes?: Uint8Array;
  readonly text?: string;
  readonly contentType?: string;
}

export type Handler = (request: ApiRequest) => Promise<ApiResponse>;

export interface Route {
  readonly handler: Handler;
  /** Body size limit for non-JSON bodies of this operation (JSON bodies use the app's JSON limit). */
  readonly maxBodyBytes?: number;
}

/** Routes by operationId. */
export type RouteTable = Readonly<Record<string, Route>>;

export const json = (status: number, body: unknown, headers?: Record<string, string>): ApiResponse => ({
  status,
  json: body,
  ...(headers === undefined ? {} : { headers }),
});
