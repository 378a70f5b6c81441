/** Bland–Altman plot of predicted vs reference lesion volume (one colour per site), to PNG. */
import type { BlandAltman } from '../../domain/evaluation/batch.ts';
import { PALETTE, renderChart, type Series } from './chart.ts';

export function blandAltmanPng(ba: BlandAltman, title = 'Lesion volume: prediction vs reference'): Buffer {
  const sites = [...new Set(ba.points.map((p) => p.site))].sort();
  const series: Series[] = sites.map((site, n) => ({
    kind: 'scatter',
    label: sites.length > 1 || site !== 'all' ? site : 'cases',
    color: PALETTE[n % PALETTE.length],
    points: ba.points.filter((p) => p.site === site).map((p) => ({ x: p.mean, y: p.diff })),
  }));
  return renderChart({
    title,
    xLabel: 'Mean of prediction and reference volume (mL)',
    yLabel: 'Prediction − reference (mL)',
    series,
    referenceLines: [
      { y: 0, color: [150, 150, 150] },
      { y: ba.bias, color: [0, 0, 0], label: `Mean ${ba.bias.toFixed(2)}` },
      { y: ba.upperLimit, color: [200, 0, 0], dashed: true, label: `+1.96 SD ${ba.upperLimit.toFixed(2)}` },
      { y: ba.lowerLimit, color: [200, 0, 0], dashed: true, label: `−1.96 SD ${ba.lowerLimit.toFixed(2)}` },
    ],
  });
}
