/**
 * Declarative series classification: which series of a study is FLAIR / T2 / T1 / T1C (post-contrast) /
 * OTHER, and whether it is 2D or 3D, decided by ordered rules held in configuration (config/series-rules.json
 * is the default; a site file can put its own rules in front of them with `"extends": "default"`, or replace
 * them). The first role rule that matches decides; every decision records the rule id and the attribute
 * values that matched.
 *
 * Rule file (version 1):
 *   { "version": 1, "extends"?: "default",
 *     "roles": [ { "id": "flair-by-name", "role": "FLAIR", "when": <condition>, "note"?: "…" } … ],
 *     "acquisition": [ { "id": "acq-3d", "acquisition": "3D", "when": <condition> } … ] }
 * A condition is { "all": [..] } | { "any": [..] } | { "not": <condition> } | a test on one attribute:
 *   { "attribute": "seriesDescription", "matches": "flair" }          regular expression, case-insensitive
 *   { "attribute": "scanningSequence", "includes": "IR" }             list attribute contains (any case)
 *   { "attribute": "modality", "equals": "MR" } / { "in": ["MR"] }    (lists: any value equals)
 *   { "attribute": "inversionTime", "gte": 1500 } (gt, lte, lt)        numeric comparisons
 *   { "attribute": "contrastBolusAgent", "exists": true }
 * A missing attribute fails every test except `"exists": false`.
 *
 * Codes: CONFIG.SERIES_RULES_INVALID ('invalid').
 */
import { DomainError } from '../errors.ts';
import type { SeriesRole } from '../model/analysis.ts';
import type { SeriesAttributes, SeriesDescriptor } from '../ports/image-source.port.ts';

export type Acquisition = '2D' | '3D' | 'unknown';

/** Everything a rule may test: the series attributes plus a few descriptor fields. */
export interface ClassificationInput extends SeriesAttributes {
  readonly modality: string;
  readonly sopClassUid?: string;
  readonly seriesNumber?: number;
  /** Image planes in the series (instances, or frames for multi-frame objects). */
  readonly planes: number;
}

export const RULE_ATTRIBUTES = [
  'seriesDescription',
  'protocolName',
  'sequenceName',
  'scanningSequence',
  'sequenceVariant',
  'scanOptions',
  'imageType',
  'mrAcquisitionType',
  'inversionTime',
  'repetitionTime',
  'echoTime',
  'flipAngle',
  'sliceThickness',
  'contrastBolusAgent',
  'magneticFieldStrength',
  'manufacturer',
  'manufacturerModelName',
  'pulseSequenceName',
  'modality',
  'sopClassUid',
  'seriesNumber',
  'planes',
] as const;
export type RuleAttribute = (typeof RULE_ATTRIBUTES)[number];

export interface AttributeTest {
  readonly attribute: RuleAttribute;
  readonly matches?: string;
  readonly includes?: string;
  readonly equals?: string | number;
  readonly in?: readonly (string | number)[];
  readonly gte?: number;
  readonly gt?: number;
  readonly lte?: number;
  readonly lt?: number;
  readonly exists?: boolean;
}

export type Condition =
  | { readonly all: readonly Condition[] }
  | { readonly any: readonly Condition[] }
  | { readonly not: Condition }
  | AttributeTest;

export interface RoleRule {
  readonly id: string;
  readonly role: SeriesRole;
  readonly when: Condition;
  readonly note?: string;
}

export interface AcquisitionRule {
  readonly id: string;
  readonly acquisition: '2D' | '3D';
  readonly when: Condition;
}

/** A validated, compiled rule set. Build it with parseSeriesRules. */
export interface SeriesRules {
  readonly roles: readonly RoleRule[];
  readonly acquisition: readonly AcquisitionRule[];
  /** Compiled regular expressions, by pattern. */
  readonly patterns: ReadonlyMap<string, RegExp>;
}

export interface SeriesClassification {
  readonly role: SeriesRole;
  readonly acquisition: Acquisition;
  /** Id of the role rule that decided ('none' when no rule matched). */
  readonly ruleId: string;
  readonly acquisitionRuleId: string;
  /** The attribute tests that matched, e.g. 'seriesDescription "AX FLAIR" matches /flair/'. */
  readonly matched: readonly string[];
  /** One line for people: rule id and matched attributes, for the role and the acquisition. */
  readonly reason: string;
}

const ROLES: readonly SeriesRole[] = ['FLAIR', 'T2', 'T1', 'T1C', 'OTHER'];

function bad(message: string, path: string): DomainError {
  return new DomainError('CONFIG.SERIES_RULES_INVALID', `series rules: ${path}: ${message}`, {
    issueType: 'invalid',
    details: { path },
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TEST_KEYS = ['matches', 'includes', 'equals', 'in', 'gte', 'gt', 'lte', 'lt', 'exists'] as const;

function parseCondition(v: unknown, path: string, patterns: Map<string, RegExp>): Condition {
  if (!isRecord(v)) throw bad('a condition must be an object', path);
  const keys = Object.keys(v);
  if ('all' in v || 'any' in v) {
    const k = 'all' in v ? 'all' : 'any';
    if (keys.length !== 1) throw bad(`"${k}" must stand alone`, path);
    const list = v[k];
    if (!Array.isArray(list) || list.length === 0) throw bad(`"${k}" needs a non-empty list`, path);
    const parsed = list.map((c: unknown, x) => parseCondition(c, `${path}.${k}[${x}]`, patterns));
    return k === 'all' ? { all: parsed } : { any: parsed };
  }
  if ('not' in v) {
    if (keys.length !== 1) throw bad('"not" must stand alone', path);
    return { not: parseCondition(v.not, `${path}.not`, patterns) };
  }
  const attribute = v.attribute;
  if (typeof attribute !== 'string' || !(RULE_ATTRIBUTES as readonly string[]).includes(attribute))
    throw bad(`unknown attribute ${JSON.stringify(attribute)} (known: ${RULE_ATTRIBUTES.join(', ')})`, path);
  const tests = keys.filter((k) => k !== 'attribute');
  if (tests.length !== 1) throw bad('a test needs exactly one of ' + TEST_KEYS.join(', '), path);
  const op = tests[0];
  const value = v[op];
  const test: { attribute: RuleAttribute } & Record<string, unknown> = {
    attribute: attribute as RuleAttribute,
  };
  switch (op) {
    case 'matches': {
      if (typeof value !== 'string') throw bad('"matches" needs a string', path);
      try {
        patterns.set(value, new RegExp(value, 'i'));
      } catch (e) {
        throw bad(
          `bad regular expression ${JSON.stringify(value)}: ${e instanceof Error ? e.message : ''}`,
          path,
        );
      }
      test.matches = value;
      break;
    }
    case 'includes':
      if (typeof value !== 'string') throw bad('"includes" needs a string', path);
      test.includes = value;
      break;
    case 'equals':
      if (typeof value !== 'string' && typeof value !== 'number')
        throw bad('"equals" needs a string or number', path);
      test.equals = value;
      break;
    case 'in':
      if (!Array.isArray(value) || !value.every((x) => typeof x === 'string' || typeof x === 'number'))
        throw bad('"in" needs a list of strings or numbers', path);
      test.in = value;
      break;
    case 'gte':
    case 'gt':
    case 'lte':
    case 'lt':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`"${op}" needs a number`, path);
      test[op] = value;
      break;
    case 'exists':
      if (typeof value !== 'boolean') throw bad('"exists" needs true or false', path);
      test.exists = value;
      break;
    default:
      throw bad(`unknown test "${op}"`, path);
  }
  return test;
}

function parseId(v: Record<string, unknown>, path: string, ids: Set<string>): string {
  const id = v.id;
  if (typeof id !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/i.test(id))
    throw bad('each rule needs an id (letters, digits, . _ -)', path);
  if (ids.has(id)) throw bad(`duplicate rule id "${id}"`, path);
  ids.add(id);
  return id;
}

/**
 * Validates a rule document (parsed JSON) and compiles it. With `"extends": "default"` the document's
 * rules run before those of `base` (pass the default rules); otherwise they replace them.
 */
export function parseSeriesRules(doc: unknown, base?: SeriesRules): SeriesRules {
  if (!isRecord(doc)) throw bad('the document must be an object', '$');
  if (doc.version !== 1) throw bad('"version" must be 1', '$.version');
  const extendsDefault = doc.extends === 'default';
  if (doc.extends !== undefined && !extendsDefault) throw bad('"extends" may only be "default"', '$.extends');
  if (extendsDefault && base === undefined)
    throw bad('"extends": "default" but no default rules were given', '$.extends');
  const patterns = new Map<string, RegExp>(base !== undefined && extendsDefault ? base.patterns : []);
  const ids = new Set<string>();
  const rolesIn = doc.roles ?? [];
  if (!Array.isArray(rolesIn)) throw bad('"roles" must be a list', '$.roles');
  const roles: RoleRule[] = rolesIn.map((r: unknown, x) => {
    const path = `$.roles[${x}]`;
    if (!isRecord(r)) throw bad('a rule must be an object', path);
    const id = parseId(r, path, ids);
    if (typeof r.role !== 'string' || !(ROLES as readonly string[]).includes(r.role))
      throw bad(`"role" must be one of ${ROLES.join(', ')}`, path);
    if (r.note !== undefined && typeof r.note !== 'string') throw bad('"note" must be a string', path);
    return {
      id,
      role: r.role as SeriesRole,
      when: parseCondition(r.when, `${path}.when`, patterns),
      ...(typeof r.note === 'string' ? { note: r.note } : {}),
    };
  });
  const acqIn = doc.acquisition ?? [];
  if (!Array.isArray(acqIn)) throw bad('"acquisition" must be a list', '$.acquisition');
  const acquisition: AcquisitionRule[] = acqIn.map((r: unknown, x) => {
    const path = `$.acquisition[${x}]`;
    if (!isRecord(r)) throw bad('a rule must be an object', path);
    const id = parseId(r, path, ids);
    if (r.acquisition !== '2D' && r.acquisition !== '3D')
      throw bad('"acquisition" must be "2D" or "3D"', path);
    return { id, acquisition: r.acquisition, when: parseCondition(r.when, `${path}.when`, patterns) };
  });
  const extra = Object.keys(doc).filter(
    (k) => !['version', 'extends', 'roles', 'acquisition', 'description'].includes(k),
  );
  if (extra.length > 0) throw bad(`unknown key(s) ${extra.join(', ')}`, '$');
  if (extendsDefault && base !== undefined) {
    for (const r of [...base.roles, ...base.acquisition])
      if (ids.has(r.id)) throw bad(`rule id "${r.id}" is already used by the default rules`, '$');
    return { roles: [...roles, ...base.roles], acquisition: [...acquisition, ...base.acquisition], patterns };
  }
  if (roles.length === 0) throw bad('at least one role rule is needed', '$.roles');
  return { roles, acquisition, patterns };
}

function show(v: unknown): string {
  if (Array.isArray(v)) return (v as unknown[]).map((x) => String(x)).join('\\');
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function lower(x: string | number): string {
  return String(x).toLowerCase();
}

/** Evaluates a condition; on success returns the descriptions of the tests that matched. */
function evaluate(c: Condition, input: ClassificationInput, rules: SeriesRules): string[] | null {
  if ('all' in c) {
    const out: string[] = [];
    for (const sub of c.all) {
      const m = evaluate(sub, input, rules);
      if (m === null) return null;
      out.push(...m);
    }
    return out;
  }
  if ('any' in c) {
    for (const sub of c.any) {
      const m = evaluate(sub, input, rules);
      if (m !== null) return m;
    }
    return null;
  }
  if ('not' in c) return evaluate(c.not, input, rules) === null ? [] : null;
  const raw: unknown = input[c.attribute];
  const values: (string | number)[] = Array.isArray(raw)
    ? (raw as unknown[]).filter((x): x is string | number => typeof x === 'string' || typeof x === 'number')
    : typeof raw === 'string' || typeof raw === 'number'
      ? [raw]
      : [];
  const present = values.some((x) => x !== '');
  const name = `${c.attribute} ${show(raw)}`;
  if (c.exists !== undefined) {
    if (present !== c.exists) return null;
    return [c.exists ? `${name} present` : `${c.attribute} absent`];
  }
  if (!present) return null;
  if (c.matches !== undefined) {
    const re = rules.patterns.get(c.matches) ?? new RegExp(c.matches, 'i');
    return values.some((x) => re.test(String(x))) ? [`${name} matches /${c.matches}/`] : null;
  }
  if (c.includes !== undefined) {
    const want = c.includes.toLowerCase();
    return values.some((x) => lower(x) === want) ? [`${name} includes ${c.includes}`] : null;
  }
  if (c.equals !== undefined) {
    const want = lower(c.equals);
    return values.some((x) => lower(x) === want) ? [`${name} = ${c.equals}`] : null;
  }
  if (c.in !== undefined) {
    const set = new Set(c.in.map(lower));
    return values.some((x) => set.has(lower(x))) ? [`${name} in [${c.in.join(', ')}]`] : null;
  }
  const n = typeof values[0] === 'number' ? values[0] : Number(values[0]);
  if (!Number.isFinite(n)) return null;
  if (c.gte !== undefined) return n >= c.gte ? [`${name} ≥ ${c.gte}`] : null;
  if (c.gt !== undefined) return n > c.gt ? [`${name} > ${c.gt}`] : null;
  if (c.lte !== undefined) return n <= c.lte ? [`${name} ≤ ${c.lte}`] : null;
  if (c.lt !== undefined) return n < c.lt ? [`${name} < ${c.lt}`] : null;
  return null;
}

export function classificationInput(series: SeriesDescriptor): ClassificationInput {
  return {
    ...series.attributes,
    modality: series.modality,
    ...(series.sopClassUid === undefined ? {} : { sopClassUid: series.sopClassUid }),
    ...(series.seriesNumber === undefined ? {} : { seriesNumber: series.seriesNumber }),
    planes: series.numberOfFrames ?? series.numberOfInstances,
  };
}

export function classifySeries(series: SeriesDescriptor, rules: SeriesRules): SeriesClassification {
  const input = classificationInput(series);
  let role: SeriesRole = 'OTHER';
  let ruleId = 'none';
  let matched: string[] = [];
  for (const r of rules.roles) {
    const m = evaluate(r.when, input, rules);
    if (m !== null) {
      role = r.role;
      ruleId = r.id;
      matched = m;
      break;
    }
  }
  let acquisition: Acquisition = 'unknown';
  let acquisitionRuleId = 'none';
  let acqMatched: string[] = [];
  for (const r of rules.acquisition) {
    const m = evaluate(r.when, input, rules);
    if (m !== null) {
      acquisition = r.acquisition;
      acquisitionRuleId = r.id;
      acqMatched = m;
      break;
    }
  }
  const roleText =
    ruleId === 'none'
      ? `${role}: no role rule matched`
      : `${role} by rule ${ruleId} (${matched.join('; ') || 'always'})`;
  const acqText =
    acquisitionRuleId === 'none'
      ? 'acquisition unknown: no acquisition rule matched'
      : `${acquisition} by rule ${acquisitionRuleId} (${acqMatched.join('; ')})`;
  return { role, acquisition, ruleId, acquisitionRuleId, matched, reason: `${roleText}; ${acqText}` };
}
