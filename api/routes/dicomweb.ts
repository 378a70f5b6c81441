/** STOW-RS receiver: multipart/related; type="application/dicom" → per-instance results in DICOM JSON. */
import { DomainError } from '../../domain/errors.ts';
import type { ApiUseCases, StowInstanceResult } from '../use-cases.ts';
import type { RouteTable } from '../http.ts';
import { parseMediaType, parseMultipart } from '../multipart.ts';

const DICOM = 'application/dicom';

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

function item(r: StowInstanceResult): DicomJson {
  const out: DicomJson = {};
  if (r.sopClassUid !== undefined) out['00081150'] = { vr: 'UI', Value: [r.sopClassUid] };
  if (r.sopInstanceUid !== undefined) out['00081155'] = { vr: 'UI', Value: [r.sopInstanceUid] };
  if (r.stored && r.retrieveUrl !== undefined) out['00081190'] = { vr: 'UR', Value: [r.retrieveUrl] };
  if (!r.stored) out['00081197'] = { vr: 'US', Value: [r.failureReason ?? 0x0110] };
  return out;
}

export function dicomwebRoutes(
  useCases: Pick<ApiUseCases, 'receiveInstances'>,
  maxBodyBytes: number,
): RouteTable {
  return {
    stowStudies: {
      maxBodyBytes,
      async handler(req) {
        const receive = useCases.receiveInstances;
        if (receive === undefined)
          throw new DomainError('STOW.NOT_AVAILABLE', 'this service does not accept STOW-RS uploads', {
            issueType: 'not-supported',
          });
        const mt = parseMediaType(req.headers['content-type'] ?? '');
        const type = mt.parameters.type;
        if (type !== undefined && type.toLowerCase() !== DICOM)
          throw new DomainError(
            'REQUEST.UNSUPPORTED_MEDIA_TYPE',
            `STOW-RS accepts type="${DICOM}" parts only`,
            {
              issueType: 'not-supported',
            },
          );
        const body = req.body instanceof Uint8Array ? req.body : new Uint8Array();
        const parts = parseMultipart(body, mt.parameters.boundary ?? '');
        if (parts.length === 0)
          throw new DomainError('STOW.NO_INSTANCES', 'the multipart body holds no part', {
            issueType: 'required',
          });
        const dicomParts = parts.filter((p) => p.contentType === undefined || p.contentType === DICOM);
        const refused: StowInstanceResult[] = parts
          .filter((p) => !dicomParts.includes(p))
          .map(() => ({
            stored: false,
            failureReason: 0xc000,
            error: { code: 'STOW.NOT_DICOM', message: 'a part is not application/dicom' },
          }));
        const result =
          dicomParts.length > 0 ? await receive(dicomParts.map((p) => p.body)) : { instances: [] };
        const all = [...result.instances, ...refused];
        const stored = all.filter((r) => r.stored);
        const failed = all.filter((r) => !r.stored);
        const out: DicomJson = {};
        if (result.retrieveUrl !== undefined && stored.length > 0)
          out['00081190'] = { vr: 'UR', Value: [result.retrieveUrl] };
        if (failed.length > 0) out['00081198'] = { vr: 'SQ', Value: failed.map(item) };
        if (stored.length > 0) out['00081199'] = { vr: 'SQ', Value: stored.map(item) };
        return {
          status: failed.length === 0 ? 200 : stored.length === 0 ? 409 : 202,
          json: out,
          contentType: 'application/dicom+json',
        };
      },
    },
  };
}
