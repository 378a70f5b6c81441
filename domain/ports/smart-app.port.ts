/**
 * The lesion-load trend page as a SMART App Launch v2 app (https://hl7.org/fhir/smart-app-launch/): what the
 * routes (api/routes/smart-app.ts) need from the OAuth side (SmartOAuthClient: discovery, PKCE authorize
 * redirect, code exchange, refresh — adapters/smart/smart-client.ts), from a server-side session store
 * (SmartSessionStore — the access token never reaches the browser), and from wherever the launched patient's
 * results are read (PatientResultsReader: the service's own results, or the EHR's FHIR server with the token).
 */
import type { FhirJson } from './fhir-results.port.ts';

/** An authorization request in flight (between /smart/launch and /smart/callback). */
export interface PendingLaunch {
  /** The OAuth `state` (random, single use). */
  readonly state: string;
  /** PKCE code_verifier (the authorize request carried its S256 challenge). */
  readonly codeVerifier: string;
  /** OIDC nonce (checked in the id_token). */
  readonly nonce: string;
  /** The FHIR base URL the app was launched against (iss, or the standalone one). */
  readonly fhirBaseUrl: string;
  readonly tokenEndpoint: string;
  readonly redirectUri: string;
  readonly scope: string;
  readonly kind: 'ehr' | 'standalone';
  /** Epoch ms. */
  readonly createdAt: number;
}

export interface SmartTokens {
  readonly accessToken: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly scopes: readonly string[];
  readonly refreshToken?: string;
  /** Launch context: the patient's FHIR id on the EHR. */
  readonly patient?: string;
  readonly encounter?: string;
  /** `fhirUser` of the id_token (e.g. Practitioner/123), when OpenID Connect was granted. */
  readonly fhirUser?: string;
  /** `sub` of the id_token. */
  readonly userId?: string;
  readonly needPatientBanner?: boolean;
}

export interface SmartSession {
  /** Secret session id (in the HttpOnly cookie only). */
  readonly id: string;
  /** Non-secret handle the page sends back (X-Smart-Session), so two tabs never mix patients. */
  readonly handle: string;
  readonly fhirBaseUrl: string;
  readonly tokenEndpoint: string;
  readonly tokens: SmartTokens;
  readonly kind: 'ehr' | 'standalone';
  /** Epoch ms. */
  readonly createdAt: number;
  /** Epoch ms: the session ends then at the latest. */
  readonly expiresAt: number;
}

export interface SmartOAuthClient {
  /**
   * Discovers the server of `fhirBaseUrl` (<base>/.well-known/smart-configuration) and returns the authorize
   * URL (response_type code, PKCE S256, state, nonce, aud = fhirBaseUrl, launch when given) with what the
   * callback needs. Throws SMART.DISCOVERY_FAILED, SMART.UNSUPPORTED.
   */
  begin(request: {
    readonly fhirBaseUrl: string;
    readonly launch?: string;
    readonly redirectUri: string;
  }): Promise<{ readonly authorizeUrl: string; readonly pending: PendingLaunch }>;
  /** Exchanges the code (with the code_verifier). Throws SMART.TOKEN_REJECTED, SMART.TOKEN_UNAVAILABLE, SMART.ID_TOKEN_INVALID. */
  exchange(pending: PendingLaunch, code: string): Promise<SmartTokens>;
  /** A fresh access token from the refresh token. Throws SMART.TOKEN_REJECTED when the refresh is refused. */
  refresh(session: SmartSession): Promise<SmartTokens>;
}

export interface SmartSessionStore {
  savePending(pending: PendingLaunch): Promise<void>;
  /** The pending launch for a state, removed (single use); undefined when unknown or too old. */
  takePending(state: string): Promise<PendingLaunch | undefined>;
  save(session: SmartSession): Promise<void>;
  get(id: string): Promise<SmartSession | undefined>;
  remove(id: string): Promise<void>;
}

/** FHIR resource types the page reads. */
export type TrendResourceType = 'Observation' | 'DiagnosticReport' | 'Device';

/** The launched patient's results, read with the session's authorization. */
export interface PatientResultsReader {
  /** A searchset Bundle of the patient's resources of a type (params: code, date, _count). */
  search(
    session: SmartSession,
    type: 'Observation' | 'DiagnosticReport',
    params: Readonly<Record<string, string>>,
  ): Promise<FhirJson>;
  /** One resource (Device: only one the patient's results reference). Throws SMART.NOT_FOUND. */
  read(session: SmartSession, type: TrendResourceType, id: string): Promise<FhirJson>;
  /** The PDF of one of the patient's DiagnosticReports. Throws SMART.NOT_FOUND. */
  reportPdf(session: SmartSession, reportId: string): Promise<Uint8Array>;
  /** The patient's display name, when the reader can know it (Patient read granted). */
  patientName?(session: SmartSession): Promise<string | undefined>;
}
