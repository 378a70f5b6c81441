/**
 * DICOMweb client (PS3.18): QIDO-RS search (studies, series, instances), WADO-RS retrieval (metadata,
 * instances as multipart/related — parsed here, incrementally), STOW-RS storing. Basic or bearer
 * authentication from configuration; an idle timeout (no response or no data for `timeoutMs`).
 *
 * Instances are requested uncompressed: Accept: multipart/related; type="application/dicom";
 * transfer-syntax=1.2.840.10008.1.2.1 (the PACS transcodes). A PACS that cannot (406) is asked again for
 * any transfer syntax; compressed pixel data then fail later with DICOM.COMPRESSED_UNSUPPORTED.
 *
 * Codes: PACS.UNREACHABLE ('transient'), PACS.TIMEOUT ('timeout'), PACS.AUTH_FAILED ('login'),
 * PACS.FORBIDDEN ('forbidden'), PACS.SERVER_ERROR ('transient', 5xx), PACS.BAD_RESPONSE ('processing'),
 * PACS.REQUEST_REFUSED ('processing', other 4xx), STUDY.NOT_FOUND / SERIES.NOT_FOUND ('not-found').
 */
import { DomainError } from '../../domain/errors.ts';
import { scanPart10 } from '../dicom/part10.ts';
import { buildMultipart, mediaTypeParameter, MultipartParser } from './multipart.ts';

export type DicomJson = Record<
  string,
  { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }
>;

export type DicomWebAuth =
  { readonly username: string; readonly password: string } | { readonly token: string } | undefined;

export interface DicomWebClientOptions {
  /** Base URL of the DICOMweb service, e.g. http://pacs:8042/dicom-web (no trailing slash needed). */
  readonly url: string;
  readonly auth?: DicomWebAuth;
  /** Idle timeout in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Transfer syntax to ask for (default Explicit VR Little Endian). */
  readonly transferSyntax?: string;
}

export interface StowInstanceOutcome {
  readonly sopClassUid?: string;
  readonly sopInstanceUid?: string;
  readonly stored: boolean;
  /** DICOM FailureReason from the PACS for a refused instance. */
  readonly failureReason?: number;
  readonly error?: { readonly code: string; readonly message: string };
  readonly retrieveUrl?: string;
}

export interface StowResult {
  readonly instances: readonly StowInstanceOutcome[];
  readonly retrieveUrl?: string;
}

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

const UID_RE = /^[0-9.]{1,64}$/;

function checkUid(uid: string, what: string): string {
  if (!UID_RE.test(uid))
    throw new DomainError('DICOM.INVALID_UID', `${what} "${uid.slice(0, 80)}" is not a valid UID`, {
      issueType: 'invalid',
    });
  return uid;
}

/** First value of an attribute in a DICOM JSON object. */
export function jsonValue(obj: DicomJson, tag: string): unknown {
  return tag in obj ? obj[tag].Value?.[0] : undefined;
}

export function jsonString(obj: DicomJson, tag: string): string | undefined {
  const v = jsonValue(obj, tag);
  if (typeof v === 'string') return v.trim() === '' ? undefined : v.trim();
  if (typeof v === 'number') return String(v);
  return undefined;
}

export class DicomWebClient {
  readonly url: string;
  readonly #auth: DicomWebAuth;
  readonly #timeoutMs: number;
  readonly #ts: string;

  constructor(options: DicomWebClientOptions) {
    let u: URL;
    try {
      u = new URL(options.url);
    } catch (e) {
      throw new DomainError('CONFIG.INVALID', `the PACS URL "${options.url}" is not a URL`, {
        issueType: 'invalid',
        cause: e,
      });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new DomainError('CONFIG.INVALID', 'the PACS URL must be http(s)', { issueType: 'invalid' });
    this.url = options.url.replace(/\/+$/, '');
    this.#auth = options.auth;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#ts = options.transferSyntax ?? EXPLICIT_VR_LITTLE_ENDIAN;
  }

  #headers(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    const a = this.#auth;
    if (a !== undefined) {
      h.authorization =
        'token' in a
          ? `Bearer ${a.token}`
          : `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    }
    return h;
  }

  /** fetch with an idle timeout; returns the response and a `touch` to call whenever data arrive. */
  async #fetch(
    path: string,
    init: { method?: string; headers: Record<string, string>; body?: Uint8Array },
    notFound?: () => DomainError,
  ): Promise<{ response: Response; touch: () => void; done: () => void }> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const touch = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => {
        controller.abort(
          new DomainError('PACS.TIMEOUT', `the PACS did not answer within ${this.#timeoutMs} ms`, {
            issueType: 'timeout',
          }),
        );
      }, this.#timeoutMs);
    };
    const done = (): void => {
      if (timer !== undefined) clearTimeout(timer);
    };
    touch();
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method: init.method ?? 'GET',
        headers: this.#headers(init.headers),
        ...(init.body === undefined ? {} : { body: init.body }),
        signal: controller.signal,
        redirect: 'follow',
      });
    } catch (e) {
      done();
      if (controller.signal.aborted && controller.signal.reason instanceof DomainError)
        throw controller.signal.reason;
      throw new DomainError(
        'PACS.UNREACHABLE',
        `the PACS at ${this.url} cannot be reached (${causeText(e)})`,
        {
          issueType: 'transient',
          cause: e,
        },
      );
    }
    if (!response.ok) {
      done();
      await response.body?.cancel().catch(() => undefined);
      throw statusError(response.status, path, notFound);
    }
    return { response, touch, done };
  }

  async #readAll(r: { response: Response; touch: () => void; done: () => void }): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      if (r.response.body !== null)
        for await (const chunk of r.response.body as AsyncIterable<Uint8Array>) {
          r.touch();
          chunks.push(chunk);
          size += chunk.byteLength;
        }
    } catch (e) {
      throw readError(e);
    } finally {
      r.done();
    }
    const out = new Uint8Array(size);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }

  async #json(path: string, notFound?: () => DomainError): Promise<DicomJson[]> {
    const r = await this.#fetch(path, { headers: { accept: 'application/dicom+json' } }, notFound);
    if (r.response.status === 204) {
      r.done();
      return [];
    }
    const bytes = await this.#readAll(r);
    if (bytes.byteLength === 0) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw new DomainError('PACS.BAD_RESPONSE', `the PACS sent invalid JSON for ${path}`, {
        issueType: 'processing',
        cause: e,
      });
    }
    if (
      !Array.isArray(parsed) ||
      !parsed.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x))
    )
      throw new DomainError(
        'PACS.BAD_RESPONSE',
        `the PACS sent JSON that is not a list of DICOM objects for ${path}`,
        {
          issueType: 'processing',
        },
      );
    return parsed as DicomJson[];
  }

  /** QIDO-RS studies. `query` holds DICOM keywords or tags (StudyInstanceUID, PatientID, …). */
  async searchStudies(query: Readonly<Record<string, string>> = {}): Promise<DicomJson[]> {
    const qs = new URLSearchParams(query).toString();
    return this.#json(`/studies${qs === '' ? '' : `?${qs}`}`);
  }

  /** QIDO-RS series of a study. */
  async searchSeries(studyInstanceUid: string): Promise<DicomJson[]> {
    const s = checkUid(studyInstanceUid, 'StudyInstanceUID');
    return this.#json(`/studies/${s}/series`, () => studyNotFound(s));
  }

  /** QIDO-RS instances of a series. */
  async searchInstances(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    limit?: number,
  ): Promise<DicomJson[]> {
    const s = checkUid(studyInstanceUid, 'StudyInstanceUID');
    const x = checkUid(seriesInstanceUid, 'SeriesInstanceUID');
    return this.#json(
      `/studies/${s}/series/${x}/instances${limit === undefined ? '' : `?limit=${limit}`}`,
      () => seriesNotFound(s, x),
    );
  }

  /** WADO-RS metadata of one instance (DICOM JSON). */
  async instanceMetadata(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    sopInstanceUid: string,
  ): Promise<DicomJson> {
    const s = checkUid(studyInstanceUid, 'StudyInstanceUID');
    const x = checkUid(seriesInstanceUid, 'SeriesInstanceUID');
    const i = checkUid(sopInstanceUid, 'SOPInstanceUID');
    const list = await this.#json(`/studies/${s}/series/${x}/instances/${i}/metadata`, () =>
      seriesNotFound(s, x),
    );
    if (list.length === 0) throw seriesNotFound(s, x);
    return list[0];
  }

  /** WADO-RS metadata of every instance of a series. */
  async seriesMetadata(studyInstanceUid: string, seriesInstanceUid: string): Promise<DicomJson[]> {
    const s = checkUid(studyInstanceUid, 'StudyInstanceUID');
    const x = checkUid(seriesInstanceUid, 'SeriesInstanceUID');
    return this.#json(`/studies/${s}/series/${x}/metadata`, () => seriesNotFound(s, x));
  }

  /**
   * WADO-RS: every instance of a series as Part-10 bytes, streamed; `onInstance` is called as each arrives.
   * Asks for `transferSyntax` (default explicit VR little endian); falls back to any when refused (406).
   */
  async retrieveSeries(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    onInstance?: (count: number) => void,
  ): Promise<Uint8Array[]> {
    const s = checkUid(studyInstanceUid, 'StudyInstanceUID');
    const x = checkUid(seriesInstanceUid, 'SeriesInstanceUID');
    const path = `/studies/${s}/series/${x}`;
    let r;
    try {
      r = await this.#fetch(
        path,
        { headers: { accept: `multipart/related; type="application/dicom"; transfer-syntax=${this.#ts}` } },
        () => seriesNotFound(s, x),
      );
    } catch (e) {
      if (!(e instanceof DomainError && e.code === 'PACS.NOT_ACCEPTABLE')) throw e;
      r = await this.#fetch(
        path,
        { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } },
        () => seriesNotFound(s, x),
      );
    }
    const contentType = r.response.headers.get('content-type') ?? '';
    const boundary = mediaTypeParameter(contentType, 'boundary');
    if (!/^multipart\/related/i.test(contentType) || boundary === undefined) {
      r.done();
      await r.response.body?.cancel().catch(() => undefined);
      throw new DomainError(
        'PACS.BAD_RESPONSE',
        `WADO-RS answered ${contentType || 'without a Content-Type'}, not multipart/related`,
        {
          issueType: 'processing',
        },
      );
    }
    const parser = new MultipartParser(boundary);
    const out: Uint8Array[] = [];
    try {
      if (r.response.body !== null)
        for await (const chunk of r.response.body as AsyncIterable<Uint8Array>) {
          r.touch();
          for (const part of parser.push(chunk)) {
            const type = part.headers['content-type'] ?? 'application/dicom';
            if (!/^application\/dicom/i.test(type))
              throw new DomainError(
                'PACS.BAD_RESPONSE',
                `WADO-RS part of type ${type}, expected application/dicom`,
                {
                  issueType: 'processing',
                },
              );
            out.push(part.body);
            onInstance?.(out.length);
          }
        }
    } catch (e) {
      if (e instanceof DomainError) throw e;
      throw readError(e);
    } finally {
      r.done();
    }
    parser.end();
    return out;
  }

  /** STOW-RS: stores Part-10 instances in the PACS (to /studies, or /studies/{uid} when given). */
  async stowInstances(instances: readonly Uint8Array[], studyInstanceUid?: string): Promise<StowResult> {
    // Instances that are not even structurally DICOM are refused here, not sent (a PACS may refuse the
    // whole request for one bad part).
    const checked = instances.map((bytes) => {
      try {
        const v = scanPart10(bytes).values;
        return { bytes, id: { sopClassUid: v.SOPClassUID, sopInstanceUid: v.SOPInstanceUID } };
      } catch (e) {
        if (!(e instanceof DomainError)) throw e;
        return { bytes, id: { sopClassUid: undefined, sopInstanceUid: undefined }, error: e };
      }
    });
    const valid = checked.filter((c) => c.error === undefined);
    const localFailure = (c: (typeof checked)[number]): StowInstanceOutcome => ({
      stored: false,
      failureReason: 0xc000,
      error: { code: c.error?.code ?? 'DICOM.INVALID', message: c.error?.message ?? 'not DICOM' },
    });
    const refusedAll = (code: string, message: string): StowResult => ({
      instances: checked.map((c) =>
        c.error === undefined
          ? { ...defined(c.id), stored: false, error: { code, message } }
          : localFailure(c),
      ),
    });
    if (valid.length === 0) return refusedAll('PACS.STORE_FAILED', 'nothing to send');
    const ids = valid.map((c) => c.id);
    const { body, contentType } = buildMultipart(valid.map((c) => c.bytes));
    const path =
      studyInstanceUid === undefined
        ? '/studies'
        : `/studies/${checkUid(studyInstanceUid, 'StudyInstanceUID')}`;
    let r;
    try {
      r = await this.#fetch(path, {
        method: 'POST',
        headers: { 'content-type': contentType, accept: 'application/dicom+json' },
        body,
      });
    } catch (e) {
      // 409: every instance failed; other 4xx: the PACS refused the request as a whole
      if (e instanceof DomainError && (e.code === 'PACS.CONFLICT' || e.code === 'PACS.REQUEST_REFUSED'))
        return refusedAll('PACS.STORE_FAILED', `the PACS refused the instances (${e.message})`);
      throw e;
    }
    const bytes = await this.#readAll(r);
    let response: DicomJson = {};
    if (bytes.byteLength > 0) {
      try {
        const parsed = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
        const obj = Array.isArray(parsed) ? (parsed as unknown[])[0] : parsed;
        if (typeof obj === 'object' && obj !== null) response = obj as DicomJson;
      } catch (e) {
        throw new DomainError('PACS.BAD_RESPONSE', 'the PACS sent an invalid STOW-RS response', {
          issueType: 'processing',
          cause: e,
        });
      }
    }
    const refs = sequence(response, '00081199');
    const failed = sequence(response, '00081198');
    const stored = new Map(refs.map((it) => [jsonString(it, '00081155') ?? '', jsonString(it, '00081190')]));
    const failures = new Map(
      failed.map((it) => [jsonString(it, '00081155') ?? '', Number(jsonValue(it, '00081197'))]),
    );
    const sent: StowInstanceOutcome[] = ids.map((id) => {
      const uid = id.sopInstanceUid ?? '';
      if (stored.has(uid)) {
        const url = stored.get(uid);
        return { ...defined(id), stored: true, ...(url === undefined ? {} : { retrieveUrl: url }) };
      }
      const reason = failures.get(uid);
      return {
        ...defined(id),
        stored: false,
        ...(reason === undefined || !Number.isFinite(reason) ? {} : { failureReason: reason }),
        error: {
          code: 'PACS.STORE_FAILED',
          message:
            reason === undefined
              ? 'the PACS did not report this instance as stored'
              : `the PACS refused the instance (failure reason 0x${reason.toString(16).toUpperCase()})`,
        },
      };
    });
    let next = 0;
    const results = checked.map((c) => (c.error === undefined ? sent[next++] : localFailure(c)));
    const studyUrl = jsonString(response, '00081190');
    return { instances: results, ...(studyUrl === undefined ? {} : { retrieveUrl: studyUrl }) };
  }
}

function defined(id: { sopClassUid: string | undefined; sopInstanceUid: string | undefined }): {
  sopClassUid?: string;
  sopInstanceUid?: string;
} {
  return {
    ...(id.sopClassUid === undefined ? {} : { sopClassUid: id.sopClassUid }),
    ...(id.sopInstanceUid === undefined ? {} : { sopInstanceUid: id.sopInstanceUid }),
  };
}

function sequence(obj: DicomJson, tag: string): DicomJson[] {
  const v = tag in obj ? obj[tag].Value : undefined;
  return Array.isArray(v) ? v.filter((x): x is DicomJson => typeof x === 'object' && x !== null) : [];
}

function causeText(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  if (typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string')
    return cause.code;
  return cause instanceof Error ? cause.message : String(cause);
}

function readError(e: unknown): DomainError {
  if (e instanceof DomainError) return e;
  if (e instanceof Error && e.name === 'AbortError' && e.cause instanceof DomainError) return e.cause;
  if (typeof e === 'object' && e !== null && e instanceof DomainError) return e;
  return new DomainError('PACS.UNREACHABLE', `the connection to the PACS broke (${causeText(e)})`, {
    issueType: 'transient',
    cause: e,
  });
}

function studyNotFound(uid: string): DomainError {
  return new DomainError('STUDY.NOT_FOUND', `study ${uid} is not in the PACS`, {
    issueType: 'not-found',
    details: { studyInstanceUid: uid },
  });
}

function seriesNotFound(study: string, series: string): DomainError {
  return new DomainError('SERIES.NOT_FOUND', `series ${series} of study ${study} is not in the PACS`, {
    issueType: 'not-found',
    details: { studyInstanceUid: study, seriesInstanceUid: series },
  });
}

function statusError(status: number, path: string, notFound?: () => DomainError): DomainError {
  if (status === 401)
    return new DomainError('PACS.AUTH_FAILED', 'the PACS refused the credentials (401)', {
      issueType: 'login',
    });
  if (status === 403)
    return new DomainError('PACS.FORBIDDEN', 'the PACS denied access (403)', { issueType: 'forbidden' });
  if (status === 404 && notFound !== undefined) return notFound();
  if (status === 406 || status === 415)
    return new DomainError(
      'PACS.NOT_ACCEPTABLE',
      `the PACS cannot deliver the requested representation (${status})`,
      {
        issueType: 'not-supported',
      },
    );
  if (status === 409)
    return new DomainError('PACS.CONFLICT', `the PACS refused the request (409)`, { issueType: 'conflict' });
  if (status >= 500)
    return new DomainError('PACS.SERVER_ERROR', `the PACS failed (${status}) on ${path.split('?')[0]}`, {
      issueType: 'transient',
      details: { status },
    });
  return new DomainError('PACS.REQUEST_REFUSED', `the PACS answered ${status} on ${path.split('?')[0]}`, {
    issueType: 'processing',
    details: { status },
  });
}
