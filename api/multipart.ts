/** multipart/related bodies (RFC 2387), as STOW-RS sends them: split into parts with their headers. */
import { DomainError } from '../domain/errors.ts';

export interface MultipartPart {
  /** Lower-case header names. */
  readonly headers: Readonly<Partial<Record<string, string>>>;
  readonly contentType?: string;
  readonly body: Uint8Array;
}

export interface MediaType {
  readonly type: string;
  readonly parameters: Readonly<Partial<Record<string, string>>>;
}

/** Parses `type/subtype; a=b; c="d"` (type lower-cased, parameter names lower-cased, quotes removed). */
export function parseMediaType(header: string): MediaType {
  const [head, ...rest] = header.split(';');
  const parameters: Partial<Record<string, string>> = {};
  // parameters may contain quoted ';' — re-join and scan
  const params = rest.join(';');
  const re = /\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*;?/g;
  for (const m of params.matchAll(re)) {
    const v = m[2].trim();
    parameters[m[1].toLowerCase()] = v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
  }
  return { type: head.trim().toLowerCase(), parameters };
}

const bad = (message: string): DomainError =>
  new DomainError('STOW.BAD_MULTIPART', message, { issueType: 'structure' });

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  const last = hay.length - needle.length;
  for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    let ok = true;
    for (let j = 1; j < needle.length; j++)
      if (hay[i + j] !== needle[j]) {
        ok = false;
        break;
      }
    if (ok) return i;
  }
  return -1;
}

/** Splits a multipart body by its boundary. Throws STOW.BAD_MULTIPART when it is not well formed. */
export function parseMultipart(body: Uint8Array, boundary: string): MultipartPart[] {
  if (boundary.length === 0 || boundary.length > 200) throw bad('missing or overlong multipart boundary');
  const enc = new TextEncoder();
  const delimiter = enc.encode(`--${boundary}`);
  const parts: MultipartPart[] = [];
  let pos = indexOf(body, delimiter, 0);
  if (pos < 0) throw bad('the body does not contain the multipart boundary');
  const decoder = new TextDecoder('latin1');
  for (;;) {
    let start = pos + delimiter.length;
    // close delimiter
    if (body[start] === 0x2d && body[start + 1] === 0x2d) return parts;
    // skip transport padding and the CRLF after the delimiter
    while (body[start] === 0x20 || body[start] === 0x09) start++;
    if (body[start] === 0x0d && body[start + 1] === 0x0a) start += 2;
    else if (body[start] === 0x0a) start += 1;
    else throw bad('malformed multipart delimiter line');
    const next = indexOf(body, enc.encode(`\r\n--${boundary}`), start);
    if (next < 0) throw bad('the multipart body ends without a closing boundary');
    const headerEnd = indexOf(body, enc.encode('\r\n\r\n'), start);
    const headers: Partial<Record<string, string>> = {};
    let contentStart: number;
    if (body[start] === 0x0d && body[start + 1] === 0x0a)
      contentStart = start + 2; // no headers
    else {
      if (headerEnd < 0 || headerEnd > next) throw bad('a multipart part has no header terminator');
      for (const line of decoder.decode(body.subarray(start, headerEnd)).split('\r\n')) {
        const c = line.indexOf(':');
        if (c <= 0) throw bad('malformed multipart part header');
        headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      contentStart = headerEnd + 4;
    }
    const ct = headers['content-type'];
    parts.push({
      headers,
      ...(ct === undefined ? {} : { contentType: parseMediaType(ct).type }),
      body: body.subarray(contentStart, next),
    });
    pos = next + 2;
  }
}
