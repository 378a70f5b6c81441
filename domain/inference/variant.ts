/**
 * Channel-variant selection: one model, several ONNX variants that differ in their input channels. The richest
 * variant whose channels the study provides wins (FLAIR+T2+T1, else FLAIR+T2 when T1 is missing, else FLAIR
 * alone), and the reason is recorded for the results.
 */
import { DomainError } from '../errors.ts';
import type { ChannelName, ModelManifest, ModelVariant } from '../model/manifest.ts';

export interface VariantChoice {
  readonly variant: ModelVariant;
  /** e.g. 'T1 missing: FLAIR+T2 variant'. */
  readonly reason: string;
}

function provides(available: ReadonlySet<ChannelName>, c: ChannelName): boolean {
  return c === 'ANY' ? available.size > 0 : available.has(c);
}

export function selectVariant(manifest: ModelManifest, available: readonly ChannelName[]): VariantChoice {
  const have = new Set(available);
  // richest first; ties keep the manifest's order
  const ranked = manifest.variants
    .map((v, i) => ({ v, i }))
    .sort((a, b) => b.v.channels.length - a.v.channels.length || a.i - b.i)
    .map((x) => x.v);
  const best = ranked.at(0);
  const chosen = ranked.find((v) => v.channels.every((c) => provides(have, c)));
  if (best === undefined || chosen === undefined)
    throw new DomainError(
      'MODEL.INPUT_MISMATCH',
      `model ${manifest.id} has no variant for the channels provided (${available.join(', ') || 'none'})`,
      {
        issueType: 'business-rule',
        details: {
          modelId: manifest.id,
          available: [...available],
          variants: manifest.variants.map((v) => v.channels.join('+')),
        },
      },
    );
  const label = `${chosen.channels.join('+')} variant`;
  const missing = best.channels.filter((c) => !provides(have, c));
  const reason =
    chosen === best || missing.length === 0
      ? `all channels present: ${label}`
      : `${missing.join(' and ')} missing: ${label}`;
  return { variant: chosen, reason };
}
