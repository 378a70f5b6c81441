/**
 * The FhirResults port over the mapping in this folder: ServiceRequest intake/echo, result resources of an
 * analysis (ImagingStudy from the PACS' study metadata when an ImageSource is given — cached — without the
 * series this service derived (analysed-study.ts), else from what the analysis recorded), search matching with @medplum/core (token and date semantics of FHIR
 * search), the CapabilityStatement of the service's FHIR API, and the local CodeSystem.
 */
import { matchesSearchRequest, parseSearchRequest } from '@medplum/core';
import type { CapabilityStatement, Resource, ResourceType } from '@medplum/fhirtypes';
import type { Analysis } from '../../domain/model/analysis.ts';
import type { FhirJson, FhirResults } from '../../domain/ports/fhir-results.port.ts';
import type { ImageSource, StudyDescriptor } from '../../domain/ports/image-source.port.ts';
import { DomainError } from '../../domain/errors.ts';
import { analysedStudy, studyFromAnalysis, type DerivedSeriesRule } from './analysed-study.ts';
import { localCodeSystem, SYSTEM } from './codes.ts';
import { allResources, buildResultResources } from './result-bundle.ts';
import {
  parseServiceRequest,
  serviceRequestFromAnalysis,
  type ServiceRequestIntakeOptions,
} from './service-request.ts';
import { loadFhirDefinitions } from './validation.ts';

export interface FhirResultsOptions extends ServiceRequestIntakeOptions, DerivedSeriesRule {
  /** Source of the study metadata for ImagingStudy (absent: built from the analysis). */
  readonly imageSource?: ImageSource;
  /**
   * Ids of every analysis of a study: their SEG/SR/PDF/overlay series are left out of the ImagingStudy
   * (adapters/fhir/analysed-study.ts; this analysis' own are always left out).
   */
  readonly analysisIdsOfStudy?: (studyInstanceUid: string) => Promise<readonly string[]>;
  readonly studyTimezone?: string;
  /** Software version for the CapabilityStatement. */
  readonly version?: string;
  /** Public base URL of the service (CapabilityStatement.implementation.url). */
  readonly baseUrl?: string;
  readonly cacheSize?: number;
}

/** Re-exported: the study as far as the analysis knows it (no PACS at hand). */
export { studyFromAnalysis };

/** A typed resource as the port's plain JSON. */
const asJson = (r: Resource): FhirJson => r as unknown as FhirJson;

const READ_TYPES: ResourceType[] = [
  'ServiceRequest',
  'Observation',
  'DiagnosticReport',
  'ImagingStudy',
  'Provenance',
  'CodeSystem',
];

export function capabilityStatement(
  options: { version?: string; baseUrl?: string } = {},
): CapabilityStatement {
  const search = (names: [string, 'reference' | 'token' | 'date'][]) =>
    names.map(([name, type]) => ({ name, type }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-03-01',
    kind: 'instance',
    software: {
      name: 'ms-lesion-service',
      ...(options.version === undefined ? {} : { version: options.version }),
    },
    implementation: {
      description:
        'MS lesion analysis: orders (ServiceRequest) and results (Observation, DiagnosticReport, ImagingStudy)',
      ...(options.baseUrl === undefined ? {} : { url: `${options.baseUrl.replace(/\/+$/, '')}/fhir` }),
    },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [
      {
        mode: 'server',
        security: {
          cors: false,
          service: [
            {
              coding: [
                {
                  system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                  code: 'SMART-on-FHIR',
                },
              ],
            },
          ],
          description:
            'Bearer JWT from the configured issuer with SMART system scopes, e.g. system/ServiceRequest.c, ' +
            'system/Observation.rs, system/DiagnosticReport.rs, system/ImagingStudy.rs.',
        },
        resource: READ_TYPES.map((type) => ({
          type,
          interaction: [
            { code: 'read' as const },
            ...(type === 'ServiceRequest' ? [{ code: 'create' as const }] : []),
            ...(['Observation', 'DiagnosticReport', 'ImagingStudy'].includes(type)
              ? [{ code: 'search-type' as const }]
              : []),
          ],
          ...(type === 'Observation'
            ? {
                searchParam: search([
                  ['subject', 'reference'],
                  ['patient', 'reference'],
                  ['code', 'token'],
                  ['date', 'date'],
                ]),
              }
            : type === 'DiagnosticReport'
              ? {
                  searchParam: search([
                    ['subject', 'reference'],
                    ['patient', 'reference'],
                    ['code', 'token'],
                    ['date', 'date'],
                  ]),
                }
              : type === 'ImagingStudy'
                ? {
                    searchParam: search([
                      ['subject', 'reference'],
                      ['patient', 'reference'],
                    ]),
                  }
                : {}),
        })),
      },
    ],
  };
}

export function createFhirResults(options: FhirResultsOptions = {}): FhirResults {
  loadFhirDefinitions();
  const cache = new Map<string, StudyDescriptor>();
  const max = options.cacheSize ?? 256;
  // the PACS' study descriptors, cached (a failed read is not cached, so it is retried)
  const source = options.imageSource;
  const studies: Pick<ImageSource, 'findStudy'> | undefined =
    source === undefined
      ? undefined
      : {
          async findStudy(uid) {
            const hit = cache.get(uid);
            if (hit !== undefined) return hit;
            const study = await source.findStudy(uid);
            if (cache.size >= max) cache.delete(cache.keys().next().value ?? uid);
            cache.set(uid, study);
            return study;
          },
        };
  const studyOf = (analysis: Analysis): Promise<StudyDescriptor> =>
    analysedStudy(analysis, {
      ...(studies === undefined ? {} : { imageSource: studies }),
      ...(options.analysisIdsOfStudy === undefined ? {} : { analysisIdsOfStudy: options.analysisIdsOfStudy }),
      ...(options.uidRoot === undefined ? {} : { uidRoot: options.uidRoot }),
      ...(options.manufacturer === undefined ? {} : { manufacturer: options.manufacturer }),
    });
  const capability = capabilityStatement(options);
  return {
    orderFromServiceRequest: (body) => parseServiceRequest(body, options),
    serviceRequest: (analysis) => asJson(serviceRequestFromAnalysis(analysis)),
    async resultResources(analysis) {
      if (analysis.status !== 'succeeded' || analysis.result === undefined) return [];
      const study = await studyOf(analysis);
      const pdf = analysis.artifacts.find((a) => a.name === 'report.pdf');
      const r = buildResultResources(analysis, study, {
        ...(options.studyTimezone === undefined ? {} : { studyTimezone: options.studyTimezone }),
      });
      const report =
        pdf === undefined
          ? r.report
          : {
              ...r.report,
              presentedForm: [
                {
                  contentType: 'application/pdf',
                  url: `/analyses/${analysis.id}/report.pdf`,
                  size: pdf.bytes,
                  title: 'MS lesion report',
                },
              ],
            };
      return allResources({ ...r, report }).map(asJson);
    },
    matches(resources, resourceType, params) {
      const query: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(params)) query[k] = typeof v === 'string' ? v : [...v];
      const request = parseSearchRequest(resourceType, query);
      return resources.filter(
        (r) => r.resourceType === resourceType && matchesSearchRequest(r as unknown as Resource, request),
      );
    },
    patientOf(subject) {
      if (subject.reference !== undefined) {
        const m = /^(?:Patient\/)?([A-Za-z0-9\-.]{1,64})$/.exec(subject.reference);
        if (m === null)
          throw new DomainError('FHIR.INVALID_SUBJECT', 'subject must be Patient/<id> or an id', {
            issueType: 'value',
          });
        return { patientId: m[1], patientIdSystem: SYSTEM.PATIENT_RESOURCE_ID };
      }
      const token = subject.identifier ?? '';
      const bar = token.indexOf('|');
      const value = bar < 0 ? token : token.slice(bar + 1);
      const system = bar < 0 ? '' : token.slice(0, bar);
      if (value === '')
        throw new DomainError('FHIR.INVALID_SUBJECT', 'subject:identifier must be [system|]value', {
          issueType: 'value',
        });
      return { patientId: value, ...(system === '' ? {} : { patientIdSystem: system }) };
    },
    capabilityStatement: () => asJson(capability),
    codeSystem: () => asJson(localCodeSystem()),
  };
}
