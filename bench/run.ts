/**
 * `npm run bench -- <name> [options]`: speed and memory benchmarks (never asserted in unit tests).
 * Each benchmark is bench/<name>.ts exporting `run(argv)`; results print as a table and a JSON line.
 */
const BENCHES: Readonly<
  Partial<Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void> }> }>>
> = {
  series: {
    summary: 'series → volume on the 170-slice Philips DICOM series (phases, peak RSS) beside dcm2niix',
    load: () => import('./series.ts'),
  },
  'longitudinal-validation': {
    summary:
      'lesion-change validation on the two longitudinal patients (gt-derived masks; the model when installed)',
    load: () => import('./longitudinal-validation.ts'),
  },
  'connected-components': {
    summary: '3-D labelling vs scipy.ndimage.label, 256×256×180, 6/26-conn',
    load: () => import('./connected-components.ts'),
  },
  'sliding-window': {
    summary: '182×218×182 3-channel volume, 1.4 M-param U-Net, onnxruntime-node vs torch CPU',
    load: () => import('./sliding-window.ts'),
  },
};

const name = process.argv.at(2);
const entry = name === undefined ? undefined : BENCHES[name];
if (entry === undefined) {
  console.log(
    `usage: npm run bench -- <name>\n\n${Object.entries(BENCHES)
      .map(([n, b]) => `  ${n.padEnd(22)} ${b?.summary ?? ''}`)
      .join('\n')}`,
  );
  process.exitCode = name === undefined ? 0 : 2;
} else {
  const mod = await entry.load();
  await mod.run(process.argv.slice(3));
}
