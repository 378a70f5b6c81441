/**
 * DICOM Comprehensive SR "Imaging Measurement Report" (TID 1500) with the lesion metrics of an analysis:
 * - observation context: the algorithm as Device observer (TID 1004: UID, name, manufacturer, model, serial);
 * - procedure reported: LN 24590-2 MR Brain; language en-US;
 * - Image Library: every source FLAIR instance;
 * - Imaging Measurements:
 *   - one Volumetric ROI group (TID 1411) for all lesions: tracking id/UID, the SEG segment (when a SEG is
 *     given), source series, finding DCM 110702, finding site SCT 12738006 Brain, algorithm name/version
 *     (TID 4019), total volume (SCT 118565006, mL) and lesion count;
 *   - one Measurement group (TID 1501) per lesion location: finding site (99MSLS location), volume, count;
 *   - with a prior: one group (TID 1501) "Lesion change since prior exam": new, enlarged, disappeared counts,
 *     prior total volume, volume change (mL and %), and the prior study's UID.
 * UIDs derive from the analysis id (re-building gives the same object).
 */
import type { NaturalizedDataset } from 'dcmjs';
import type { AnalysisResult } from '../../../domain/model/analysis.ts';
import { LESION_LOCATIONS } from '../../../domain/model/analysis.ts';
import { CODES, locationCode, privateSchemeIdentification, type CodeItem } from './codes.ts';
import {
  checkSourceSlices,
  codeItem,
  commonAttributes,
  contextUids,
  deviceSerial,
  ds,
  fit,
  DEFAULT_EQUIPMENT,
  SERIES_NUMBER,
  SOP,
  writePart10,
  type DerivedContext,
  type DerivedObject,
} from './common.ts';
import { DERIVED_SERIES_ROLE } from './uids.ts';
import { SEGMENT } from './segmentation.ts';

export interface SegmentationReference {
  readonly sopInstanceUid: string;
  readonly seriesInstanceUid: string;
  /** True when the SEG holds segment 2 (new or enlarging lesions). */
  readonly hasChangeSegment: boolean;
}

export interface MeasurementReportInput extends DerivedContext {
  readonly result: Pick<AnalysisResult, 'lesions' | 'change'>;
  /** The SEG these measurements were made on (referenced per TID 1411). */
  readonly segmentation?: SegmentationReference;
}

export interface MeasurementReportObject extends DerivedObject {
  readonly kind: 'SR';
}

type Item = NaturalizedDataset;

function concept(c: CodeItem): Item {
  return { ConceptNameCodeSequence: [codeItem(c)] };
}

function text(rel: string, name: CodeItem, value: string): Item {
  return { RelationshipType: rel, ValueType: 'TEXT', ...concept(name), TextValue: fit(value, 1024) };
}

function code(rel: string, name: CodeItem, value: CodeItem): Item {
  return {
    RelationshipType: rel,
    ValueType: 'CODE',
    ...concept(name),
    ConceptCodeSequence: [codeItem(value)],
  };
}

function uidref(rel: string, name: CodeItem, value: string): Item {
  return { RelationshipType: rel, ValueType: 'UIDREF', ...concept(name), UID: value };
}

function numItem(name: CodeItem, value: number, unit: CodeItem, children: Item[] = []): Item {
  return {
    RelationshipType: 'CONTAINS',
    ValueType: 'NUM',
    ...concept(name),
    MeasuredValueSequence: [{ MeasurementUnitsCodeSequence: [codeItem(unit)], NumericValue: ds(value) }],
    ...(children.length > 0 ? { ContentSequence: children } : {}),
  };
}

function container(rel: string, name: CodeItem, children: Item[], template?: string): Item {
  return {
    RelationshipType: rel,
    ValueType: 'CONTAINER',
    ...concept(name),
    ContinuityOfContent: 'SEPARATE',
    ...(template === undefined
      ? {}
      : { ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: template }] }),
    ContentSequence: children,
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function algorithm(input: MeasurementReportInput): Item[] {
  return [
    text('HAS CONCEPT MOD', CODES.algorithmName, input.model.name),
    text('HAS CONCEPT MOD', CODES.algorithmVersion, input.model.version),
  ];
}

/** Builds the TID 1500 SR (Part-10 bytes and identity). */
export function buildMeasurementReport(input: MeasurementReportInput): MeasurementReportObject {
  checkSourceSlices(input, input.flairSlices.length);
  const uid = contextUids(input);
  const eq = input.equipment ?? DEFAULT_EQUIPMENT;
  const { lesions, change } = input.result;
  const seriesInstanceUid = uid(DERIVED_SERIES_ROLE.sr);
  const sopInstanceUid = uid('sr.instance');
  const deviceUid = uid('algorithm.device');

  const observer: Item[] = [
    code('HAS OBS CONTEXT', CODES.observerType, CODES.device),
    uidref('HAS OBS CONTEXT', CODES.deviceObserverUid, deviceUid),
    text('HAS OBS CONTEXT', CODES.deviceObserverName, `${input.model.name} ${input.model.version}`),
    text('HAS OBS CONTEXT', CODES.deviceObserverManufacturer, eq.manufacturer),
    text('HAS OBS CONTEXT', CODES.deviceObserverModelName, input.model.name),
    text('HAS OBS CONTEXT', CODES.deviceObserverSerialNumber, deviceSerial(input.model)),
  ];

  const library = container('CONTAINS', CODES.imageLibrary, [
    container(
      'CONTAINS',
      CODES.imageLibraryGroup,
      input.flairSlices.map((s) => ({
        RelationshipType: 'CONTAINS',
        ValueType: 'IMAGE',
        ReferencedSOPSequence: [
          {
            ReferencedSOPClassUID: s.sopClassUid ?? SOP.MRImage,
            ReferencedSOPInstanceUID: s.sopInstanceUid,
            ...(s.frameNumber === undefined ? {} : { ReferencedFrameNumber: s.frameNumber }),
          },
        ],
      })),
    ),
  ]);

  const allLesions: Item[] = [
    text('HAS OBS CONTEXT', CODES.trackingIdentifier, 'All T2/FLAIR lesions'),
    uidref('HAS OBS CONTEXT', CODES.trackingUid, uid('seg.tracking.lesions')),
    ...(input.segmentation === undefined
      ? []
      : [
          {
            RelationshipType: 'CONTAINS',
            ValueType: 'IMAGE',
            ...concept(CODES.referencedSegment),
            ReferencedSOPSequence: [
              {
                ReferencedSOPClassUID: SOP.Segmentation,
                ReferencedSOPInstanceUID: input.segmentation.sopInstanceUid,
                ReferencedSegmentNumber: SEGMENT.lesions,
              },
            ],
          },
        ]),
    uidref('CONTAINS', CODES.sourceSeriesForSegmentation, input.flairSeries.seriesInstanceUid),
    code('HAS CONCEPT MOD', CODES.finding, CODES.wmT2Hyperintensity),
    code('HAS CONCEPT MOD', CODES.findingSite, CODES.brain),
    ...algorithm(input),
    numItem(CODES.volume, round3(lesions.totalVolumeMl), CODES.milliliter),
    numItem(CODES.lesionCount, lesions.count, CODES.lesions),
  ];
  const groups: Item[] = [container('CONTAINS', CODES.measurementGroup, allLesions, '1411')];

  for (const loc of LESION_LOCATIONS) {
    groups.push(
      container(
        'CONTAINS',
        CODES.measurementGroup,
        [
          text('HAS OBS CONTEXT', CODES.trackingIdentifier, `${locationCode(loc).meaning} lesions`),
          uidref('HAS OBS CONTEXT', CODES.trackingUid, uid(`sr.tracking.${loc}`)),
          code('HAS CONCEPT MOD', CODES.finding, CODES.wmT2Hyperintensity),
          code('HAS CONCEPT MOD', CODES.findingSite, locationCode(loc)),
          numItem(CODES.volume, round3(lesions.volumeByLocationMl[loc]), CODES.milliliter, algorithm(input)),
          numItem(CODES.lesionCount, lesions.countByLocation[loc], CODES.lesions, algorithm(input)),
        ],
        '1501',
      ),
    );
  }

  if (change !== undefined) {
    const items: Item[] = [
      text('HAS OBS CONTEXT', CODES.trackingIdentifier, 'Lesion change since prior exam'),
      uidref('HAS OBS CONTEXT', CODES.trackingUid, uid('sr.tracking.change')),
      code('HAS CONCEPT MOD', CODES.finding, CODES.changeSincePrior),
      ...(change.priorStudyInstanceUid === undefined
        ? []
        : [uidref('CONTAINS', CODES.comparisonStudy, change.priorStudyInstanceUid)]),
      numItem(CODES.newCount, change.newCount, CODES.lesions, algorithm(input)),
      numItem(CODES.enlargedCount, change.enlargedCount, CODES.lesions, algorithm(input)),
      numItem(CODES.disappearedCount, change.disappearedCount, CODES.lesions, algorithm(input)),
      numItem(CODES.priorVolume, round3(change.priorTotalVolumeMl), CODES.milliliter, algorithm(input)),
      numItem(CODES.volumeChange, round3(change.totalVolumeChangeMl), CODES.milliliter, algorithm(input)),
      ...(change.totalVolumeChangePercent === null
        ? []
        : [
            numItem(
              CODES.volumeChangePct,
              Math.round(change.totalVolumeChangePercent * 10) / 10,
              CODES.percent,
              algorithm(input),
            ),
          ]),
    ];
    groups.push(container('CONTAINS', CODES.measurementGroup, items, '1501'));
  }

  const evidenceSeries: Item[] = [
    {
      SeriesInstanceUID: input.flairSeries.seriesInstanceUid,
      ReferencedSOPSequence: [...new Map(input.flairSlices.map((s) => [s.sopInstanceUid, s])).values()].map(
        (s) => ({
          ReferencedSOPClassUID: s.sopClassUid ?? SOP.MRImage,
          ReferencedSOPInstanceUID: s.sopInstanceUid,
        }),
      ),
    },
  ];
  if (input.segmentation !== undefined)
    evidenceSeries.push({
      SeriesInstanceUID: input.segmentation.seriesInstanceUid,
      ReferencedSOPSequence: [
        {
          ReferencedSOPClassUID: SOP.Segmentation,
          ReferencedSOPInstanceUID: input.segmentation.sopInstanceUid,
        },
      ],
    });

  const dataset: NaturalizedDataset = {
    ...commonAttributes(input, {
      modality: 'SR',
      sopClassUid: SOP.ComprehensiveSR,
      seriesInstanceUid,
      sopInstanceUid,
      seriesNumber: SERIES_NUMBER.sr,
      instanceNumber: 1,
      seriesDescription: 'AI-generated MS lesion measurements (research use)',
    }),
    ReferencedPerformedProcedureStepSequence: [],
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    PerformedProcedureCodeSequence: [codeItem(CODES.mrBrain)],
    CurrentRequestedProcedureEvidenceSequence: [
      { StudyInstanceUID: input.study.studyInstanceUid, ReferencedSeriesSequence: evidenceSeries },
    ],
    CodingSchemeIdentificationSequence: [privateSchemeIdentification()],
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: [codeItem(CODES.imagingMeasurementReport)],
    ContinuityOfContent: 'SEPARATE',
    ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '1500' }],
    ContentSequence: [
      code('HAS CONCEPT MOD', CODES.languageOfContent, CODES.englishUs),
      ...observer,
      code('HAS CONCEPT MOD', CODES.procedureReported, CODES.mrBrain),
      library,
      container('CONTAINS', CODES.imagingMeasurements, groups),
    ],
  };
  return {
    kind: 'SR',
    sopClassUid: SOP.ComprehensiveSR,
    sopInstanceUid,
    seriesInstanceUid,
    bytes: writePart10(dataset),
  };
}
