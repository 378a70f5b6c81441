import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../domain/errors.ts';
import { parseMediaType, parseMultipart } from './multipart.ts';

const enc = new TextEncoder();
const concat = (...parts: (string | Uint8Array)[]): Uint8Array => {
  const bufs = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
  const out = new Uint8Array(bufs.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of bufs) {
    out.set(b, o);
    o += b.length;
  }
  return out;
};

describe('multipart/related', () => {
  it('parses the media type with quoted parameters', () => {
    assert.deepEqual(parseMediaType('Multipart/Related; type="application/dicom"; boundary="a;b c"'), {
      type: 'multipart/related',
      parameters: { type: 'application/dicom', boundary: 'a;b c' },
    });
    assert.deepEqual(parseMediaType('application/json'), { type: 'application/json', parameters: {} });
  });

  it('splits binary parts exactly, with their headers', () => {
    const binary = new Uint8Array([0, 13, 10, 45, 45, 255, 0x44, 0x49, 0x43, 0x4d]); // contains CRLF--
    const body = concat(
      'preamble\r\n--XYZ\r\nContent-Type: application/dicom\r\nContent-Length: 10\r\n\r\n',
      binary,
      '\r\n--XYZ\r\nContent-Type: application/dicom\r\n\r\n',
      'second',
      '\r\n--XYZ--\r\nepilogue',
    );
    const parts = parseMultipart(body, 'XYZ');
    assert.equal(parts.length, 2);
    assert.deepEqual(parts[0].body, binary);
    assert.equal(parts[0].contentType, 'application/dicom');
    assert.equal(parts[0].headers['content-length'], '10');
    assert.equal(new TextDecoder().decode(parts[1].body), 'second');
  });

  it('refuses malformed bodies with STOW.BAD_MULTIPART', () => {
    const bad = (e: unknown) => e instanceof DomainError && e.code === 'STOW.BAD_MULTIPART';
    assert.throws(() => parseMultipart(enc.encode('no boundary here'), 'XYZ'), bad);
    assert.throws(
      () => parseMultipart(enc.encode('--XYZ\r\nContent-Type: a/b\r\n\r\nunterminated'), 'XYZ'),
      bad,
    );
    assert.throws(() => parseMultipart(enc.encode('--XYZ\r\nbroken header\r\n\r\nx\r\n--XYZ--'), 'XYZ'), bad);
    assert.throws(() => parseMultipart(enc.encode('--XYZ--'), ''), bad);
    assert.deepEqual(parseMultipart(enc.encode('--XYZ--'), 'XYZ'), []);
  });
});
