/**
 * multipart/related (RFC 2387) as DICOMweb uses it: parsing a WADO-RS response incrementally (each part is
 * handed out as soon as its closing delimiter has arrived, so a series streams in with progress and memory
 * stays at one copy of the data) and building a STOW-RS request body.
 *
 * Codes: PACS.BAD_RESPONSE ('processing') for a body that is not valid multipart.
 */
import { randomBytes } from 'node:crypto';
import { DomainError } from '../../domain/errors.ts';

export interface Part {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

function badResponse(message: string): DomainError {
  return new DomainError('PACS.BAD_RESPONSE', message, { issueType: 'processing' });
}

/** The value of a media-type parameter (case-insensitive name; quoted or bare value). */
export function mediaTypeParameter(contentType: string, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i');
  const m = re.exec(contentType);
  if (m === null) return undefined;
  const quoted = m[1] as string | undefined;
  return quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : m[2];
}

const enc = new TextEncoder();
const latin1 = new TextDecoder('latin1');

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number, end: number): number {
  const first = needle[0];
  const last = end - needle.length;
  outer: for (let i = Math.max(0, from); i <= last; i++) {
    if (hay[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split(/\r\n/)) {
    if (line === '') continue;
    const c = line.indexOf(':');
    if (c <= 0) throw badResponse(`bad multipart part header "${line.slice(0, 80)}"`);
    headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
  }
  return headers;
}

/**
 * Incremental multipart/related parser. `push` bytes as they arrive; it returns the parts completed so far.
 * `end()` checks that the closing delimiter was seen.
 */
export class MultipartParser {
  readonly #delimiter: Uint8Array;
  #buf: Uint8Array;
  #len = 0;
  /** Where the next delimiter search starts. */
  #scan = 0;
  /** Start of the current part (after its opening delimiter line), or -1 before the first delimiter. */
  #partStart = -1;
  #done = false;

  constructor(boundary: string) {
    if (boundary === '' || boundary.length > 200) throw badResponse('bad multipart boundary');
    // A delimiter is CRLF "--" boundary; a CRLF is assumed before the body so the first one matches too.
    this.#delimiter = enc.encode(`\r\n--${boundary}`);
    this.#buf = new Uint8Array(64 * 1024);
    this.#buf.set([13, 10], 0);
    this.#len = 2;
  }

  get done(): boolean {
    return this.#done;
  }

  #append(chunk: Uint8Array): void {
    if (this.#len + chunk.length > this.#buf.length) {
      let cap = this.#buf.length;
      while (cap < this.#len + chunk.length) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
  }

  push(chunk: Uint8Array): Part[] {
    if (this.#done) return [];
    this.#append(chunk);
    const parts: Part[] = [];
    const d = this.#delimiter;
    for (;;) {
      const at = indexOf(this.#buf, d, this.#scan, this.#len);
      if (at < 0) {
        this.#scan = Math.max(this.#partStart < 0 ? 0 : this.#partStart, this.#len - d.length + 1);
        break;
      }
      // need the two bytes after the delimiter: "--" (close) or CRLF (another part), transport padding allowed
      let after = at + d.length;
      let lineEnd = -1;
      for (let p = after; p + 1 < this.#len; p++) {
        if (this.#buf[p] === 13 && this.#buf[p + 1] === 10) {
          lineEnd = p;
          break;
        }
      }
      const closing = after + 1 < this.#len && this.#buf[after] === 45 && this.#buf[after + 1] === 45;
      if (!closing && lineEnd < 0) {
        this.#scan = at;
        break;
      }
      if (this.#partStart >= 0) parts.push(this.#part(this.#partStart, at));
      if (closing) {
        this.#done = true;
        break;
      }
      after = lineEnd + 2;
      this.#partStart = after;
      this.#scan = after;
      // compact: drop everything before the current part
      if (this.#partStart > 1024 * 1024) {
        this.#buf.copyWithin(0, this.#partStart, this.#len);
        this.#len -= this.#partStart;
        this.#scan -= this.#partStart;
        this.#partStart = 0;
      }
    }
    return parts;
  }

  #part(start: number, end: number): Part {
    const sep = indexOf(this.#buf, enc.encode('\r\n\r\n'), start, end);
    let headers: Record<string, string> = {};
    let bodyStart: number;
    if (sep < 0) {
      // a part may start with CRLF right away (no headers)
      if (this.#buf[start] === 13 && this.#buf[start + 1] === 10) bodyStart = start + 2;
      else throw badResponse('multipart part without a header/body separator');
    } else {
      headers = parseHeaders(latin1.decode(this.#buf.subarray(start, sep)));
      bodyStart = sep + 4;
    }
    return { headers, body: this.#buf.slice(bodyStart, end) };
  }

  end(): void {
    if (!this.#done)
      throw badResponse('multipart body ends before its closing delimiter (truncated response)');
  }
}

/** Parses a complete multipart/related body. */
export function parseMultipart(body: Uint8Array, contentType: string): Part[] {
  const boundary = mediaTypeParameter(contentType, 'boundary');
  if (boundary === undefined) throw badResponse(`no boundary in Content-Type "${contentType}"`);
  const p = new MultipartParser(boundary);
  const parts = p.push(body);
  p.end();
  return parts;
}

/** Builds a multipart/related body of application/dicom parts (STOW-RS). */
export function buildMultipart(
  parts: readonly Uint8Array[],
  type = 'application/dicom',
): { body: Uint8Array; contentType: string } {
  const boundary = `mslesion-${randomBytes(16).toString('hex')}`;
  const head = enc.encode(`--${boundary}\r\nContent-Type: ${type}\r\n\r\n`);
  const mid = enc.encode(`\r\n--${boundary}\r\nContent-Type: ${type}\r\n\r\n`);
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const size =
    parts.reduce((s, p) => s + p.byteLength, 0) +
    head.length +
    mid.length * Math.max(0, parts.length - 1) +
    tail.length;
  const body = new Uint8Array(size);
  let o = 0;
  parts.forEach((p, x) => {
    const h = x === 0 ? head : mid;
    body.set(h, o);
    o += h.length;
    body.set(p, o);
    o += p.byteLength;
  });
  if (parts.length === 0) {
    body.set(enc.encode(`--${boundary}--\r\n`), 0);
    return {
      body: body.subarray(0, `--${boundary}--\r\n`.length),
      contentType: `multipart/related; type="${type}"; boundary=${boundary}`,
    };
  }
  body.set(tail, o);
  return { body, contentType: `multipart/related; type="${type}"; boundary=${boundary}` };
}
