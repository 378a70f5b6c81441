/**
 * ImageSource over a PACS's DICOMweb service. findStudy: QIDO-RS for the study and its series, then the
 * WADO-RS metadata of one instance per series (DICOM JSON, naturalized by dcmjs) for the attributes the
 * series rules read. loadSeries: WADO-RS retrieval of the series' instances in explicit VR little endian
 * (the PACS transcodes), parsed and decoded into image planes as they stream in.
 */
import { data } from 'dcmjs';
import { DomainError } from '../../domain/errors.ts';
import type {
  ImageSlice,
  ImageSource,
  LoadedSeries,
  LoadProgress,
  SeriesDescriptor,
  StudyDescriptor,
} from '../../domain/ports/image-source.port.ts';
import { num, str, type Dataset } from '../dicom/dataset.ts';
import { imageSlicesOf, seriesAttributesOf, studyDescriptorOf, studyFieldsOf } from '../dicom/image.ts';
import { parsePart10 } from '../dicom/part10.ts';
import {
  DicomWebClient,
  jsonString,
  jsonValue,
  type DicomJson,
  type DicomWebClientOptions,
} from './client.ts';

function naturalize(json: DicomJson): Dataset {
  try {
    return data.DicomMetaDictionary.naturalizeDataset(json);
  } catch (e) {
    throw new DomainError('PACS.BAD_RESPONSE', 'the PACS sent DICOM JSON metadata that cannot be read', {
      issueType: 'processing',
      cause: e,
    });
  }
}

export interface DicomWebSourceOptions {
  /** How long a study descriptor is reused by loadSeries (ms, default 60 000). */
  readonly descriptorTtlMs?: number;
}

export class DicomWebImageSource implements ImageSource {
  readonly client: DicomWebClient;
  readonly #ttl: number;
  readonly #recent = new Map<string, { at: number; study: StudyDescriptor }>();

  constructor(options: DicomWebClientOptions | DicomWebClient, sourceOptions: DicomWebSourceOptions = {}) {
    this.client = options instanceof DicomWebClient ? options : new DicomWebClient(options);
    this.#ttl = sourceOptions.descriptorTtlMs ?? 60_000;
  }

  async findStudy(studyInstanceUid: string): Promise<StudyDescriptor> {
    const study = await this.#describe(studyInstanceUid);
    this.#recent.set(studyInstanceUid, { at: Date.now(), study });
    for (const [k, v] of this.#recent) if (Date.now() - v.at > this.#ttl) this.#recent.delete(k);
    return study;
  }

  async #describe(studyInstanceUid: string): Promise<StudyDescriptor> {
    const studies = await this.client.searchStudies({ StudyInstanceUID: studyInstanceUid });
    const study = studies.find((s) => jsonString(s, '0020000D') === studyInstanceUid);
    if (study === undefined)
      throw new DomainError('STUDY.NOT_FOUND', `study ${studyInstanceUid} is not in the PACS`, {
        issueType: 'not-found',
        details: { studyInstanceUid },
      });
    const seriesList = await this.client.searchSeries(studyInstanceUid);
    const series: SeriesDescriptor[] = [];
    let studyFields: Omit<StudyDescriptor, 'series'> | undefined;
    for (const s of seriesList) {
      const seriesUid = jsonString(s, '0020000E');
      if (seriesUid === undefined) continue;
      const instances = await this.client.searchInstances(studyInstanceUid, seriesUid);
      const first = instances.find((i) => jsonString(i, '00080018') !== undefined);
      if (first === undefined) continue;
      const meta = naturalize(
        await this.client.instanceMetadata(studyInstanceUid, seriesUid, jsonString(first, '00080018') ?? ''),
      );
      studyFields ??= studyFieldsOf({ ...meta, StudyInstanceUID: studyInstanceUid });
      const frames = instances.reduce(
        (sum, i) => sum + Math.max(1, Number(jsonValue(i, '00280008') ?? 1) || 1),
        0,
      );
      const seriesNumber = num(meta, 'SeriesNumber');
      const sopClassUid = str(meta, 'SOPClassUID') ?? jsonString(first, '00080016');
      series.push({
        studyInstanceUid,
        seriesInstanceUid: seriesUid,
        modality: str(meta, 'Modality') ?? jsonString(s, '00080060') ?? 'OT',
        ...(seriesNumber === undefined ? {} : { seriesNumber }),
        ...(sopClassUid === undefined ? {} : { sopClassUid }),
        numberOfInstances: instances.length,
        ...(frames !== instances.length ? { numberOfFrames: frames } : {}),
        attributes: seriesAttributesOf(meta),
      });
    }
    return studyDescriptorOf(studyInstanceUid, studyFields, series);
  }

  async loadSeries(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    progress?: LoadProgress,
  ): Promise<LoadedSeries> {
    const recent = this.#recent.get(studyInstanceUid);
    const fresh = recent !== undefined && Date.now() - recent.at <= this.#ttl;
    let descriptor = fresh
      ? recent.study.series.find((s) => s.seriesInstanceUid === seriesInstanceUid)
      : undefined;
    // not seen (or not recently): ask the PACS again, the series may have arrived since
    descriptor ??= (await this.findStudy(studyInstanceUid)).series.find(
      (s) => s.seriesInstanceUid === seriesInstanceUid,
    );
    if (descriptor === undefined)
      throw new DomainError(
        'SERIES.NOT_FOUND',
        `series ${seriesInstanceUid} is not in study ${studyInstanceUid}`,
        {
          issueType: 'not-found',
          details: { studyInstanceUid, seriesInstanceUid },
        },
      );
    const total = descriptor.numberOfInstances;
    progress?.(0, total);
    const parts = await this.client.retrieveSeries(studyInstanceUid, seriesInstanceUid, (n) =>
      progress?.(Math.min(n, total), total),
    );
    const slices: ImageSlice[] = [];
    for (const bytes of parts) for (const s of imageSlicesOf(parsePart10(bytes))) slices.push(s);
    progress?.(total, total);
    return { descriptor, slices };
  }
}
