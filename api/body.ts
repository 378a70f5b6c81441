/**
 * Reading request bodies within a limit. A body that is declared (Content-Length) or turns out to be larger
 * than the limit is refused at once with REQUEST.TOO_LARGE — without reading the rest (the connection is
 * closed after the answer), so a 10 GB upload costs nothing. Only the identity content coding is accepted.
 */
import type { IncomingMessage } from 'node:http';
import { DomainError } from '../domain/errors.ts';

export function tooLarge(limit: number): DomainError {
  return new DomainError('REQUEST.TOO_LARGE', `the request body is larger than the limit of ${limit} bytes`, {
    issueType: 'too-long',
    details: { limitBytes: limit, closeConnection: true },
  });
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity')
    return Promise.reject(
      new DomainError('REQUEST.UNSUPPORTED_ENCODING', `content encoding ${encoding} is not accepted`, {
        issueType: 'not-supported',
      }),
    );
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      if (declared !== undefined && Number(declared) !== total)
        reject(
          new DomainError('REQUEST.ABORTED', 'the request body was incomplete', { issueType: 'structure' }),
        );
      else resolve(Buffer.concat(chunks, total));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(
        new DomainError('REQUEST.ABORTED', `the request body could not be read: ${e.message}`, {
          issueType: 'structure',
        }),
      );
    };
    const onAborted = (): void => {
      onError(new Error('client aborted'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

/** Parses a JSON body (UTF-8). Throws REQUEST.INVALID_JSON. */
export function parseJsonBody(bytes: Buffer, contentType: string | undefined): unknown {
  const charset = /charset=([^;]+)/i
    .exec(contentType ?? '')?.[1]
    ?.trim()
    .toLowerCase()
    .replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
    throw new DomainError(
      'REQUEST.UNSUPPORTED_MEDIA_TYPE',
      `charset ${charset} is not accepted (UTF-8 only)`,
      {
        issueType: 'not-supported',
      },
    );
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new DomainError('REQUEST.INVALID_JSON', 'the request body is not valid JSON', {
      issueType: 'structure',
    });
  }
}
