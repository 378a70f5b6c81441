import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../../domain/errors.ts';
import { buildMultipart, mediaTypeParameter, MultipartParser, parseMultipart } from './multipart.ts';

const enc = new TextEncoder();

test('build → parse round trip, also when fed one byte at a time', () => {
  const parts = [
    enc.encode('first\r\n--not-the-boundary\r\n'),
    new Uint8Array(70_000).map((_, x) => (x * 31) % 256),
    new Uint8Array(0),
    enc.encode('\r\n\r\nlast'),
  ];
  const { body, contentType } = buildMultipart(parts);
  assert.match(
    contentType,
    /^multipart\/related; type="application\/dicom"; boundary=mslesion-[0-9a-f]{32}$/,
  );
  const whole = parseMultipart(body, contentType);
  assert.deepEqual(
    whole.map((p) => p.body),
    parts,
  );
  assert.equal(whole[0].headers['content-type'], 'application/dicom');

  const boundary = mediaTypeParameter(contentType, 'boundary') ?? '';
  const p = new MultipartParser(boundary);
  const got: Uint8Array[] = [];
  for (let x = 0; x < body.length; x += x < 1000 ? 1 : 4093)
    got.push(...p.push(body.subarray(x, x < 1000 ? x + 1 : x + 4093)).map((q) => q.body));
  p.end();
  assert.deepEqual(got, parts);
});

test('preamble, epilogue, quoted boundaries and transport padding as PACSs send them', () => {
  const body = enc.encode(
    'this is a preamble\r\n--b:1 "x"  \r\nContent-Type: application/dicom\r\nContent-Length: 3\r\n\r\nabc\r\n--b:1 "x"--\r\nepilogue',
  );
  const ct = 'multipart/related; type="application/dicom"; boundary="b:1 \\"x\\""';
  assert.equal(mediaTypeParameter(ct, 'boundary'), 'b:1 "x"');
  const parts = parseMultipart(body, ct);
  assert.equal(parts.length, 1);
  assert.equal(new TextDecoder().decode(parts[0].body), 'abc');
  assert.equal(parts[0].headers['content-length'], '3');
});

test('a truncated body, a missing boundary or bad part headers are PACS.BAD_RESPONSE', () => {
  const isBad = (e: unknown): boolean => e instanceof DomainError && e.code === 'PACS.BAD_RESPONSE';
  const { body, contentType } = buildMultipart([enc.encode('abc')]);
  assert.throws(() => parseMultipart(body.subarray(0, body.length - 8), contentType), isBad);
  assert.throws(() => parseMultipart(body, 'multipart/related; type="application/dicom"'), isBad);
  assert.throws(
    () =>
      parseMultipart(enc.encode('--x\r\nno colon here\r\n\r\nabc\r\n--x--'), 'multipart/related; boundary=x'),
    isBad,
  );
});
