/**
 * Loads series classification rules from configuration files: the default config/series-rules.json, and
 * optionally a site file that extends ("extends": "default") or replaces it. Codes:
 * CONFIG.SERIES_RULES_INVALID ('invalid'), CONFIG.SERIES_RULES_UNREADABLE ('not-found').
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DomainError } from '../../domain/errors.ts';
import { parseSeriesRules, type SeriesRules } from '../../domain/imaging/series-rules.ts';

export const DEFAULT_SERIES_RULES_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'config',
  'series-rules.json',
);

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new DomainError(
      'CONFIG.SERIES_RULES_INVALID',
      `${path} is not valid JSON: ${e instanceof Error ? e.message : ''}`,
      {
        issueType: 'invalid',
        cause: e,
      },
    );
  }
}

function unreadable(path: string, e: unknown): DomainError {
  return new DomainError('CONFIG.SERIES_RULES_UNREADABLE', `cannot read series rules from ${path}`, {
    issueType: 'not-found',
    cause: e,
  });
}

/** The bundled default rules (synchronously: they ship with the code). */
export function defaultSeriesRules(): SeriesRules {
  let text: string;
  try {
    text = readFileSync(DEFAULT_SERIES_RULES_PATH, 'utf8');
  } catch (e) {
    throw unreadable(DEFAULT_SERIES_RULES_PATH, e);
  }
  return parseSeriesRules(parseJson(text, DEFAULT_SERIES_RULES_PATH));
}

/** Default rules, or a site file applied to them. */
export async function loadSeriesRules(sitePath?: string): Promise<SeriesRules> {
  const base = defaultSeriesRules();
  if (sitePath === undefined || sitePath === '') return base;
  let text: string;
  try {
    text = await readFile(sitePath, 'utf8');
  } catch (e) {
    throw unreadable(sitePath, e);
  }
  return parseSeriesRules(parseJson(text, sitePath), base);
}
