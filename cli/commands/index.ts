/**
 * The command table. Modules load lazily so `mslesion evaluate` never loads onnxruntime or express.
 * Add a command: create cli/commands/<name>.ts exporting `run` and add one line here.
 */
export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
  /** One-line progress updates (overwritten in a terminal). */
  progress(line: string): void;
}

export interface CommandModule {
  run(argv: string[], io: CommandIo): Promise<number>;
}

export interface CommandEntry {
  readonly summary: string;
  load(): Promise<CommandModule>;
}

export const COMMANDS: Readonly<Partial<Record<string, CommandEntry>>> = {
  analyze: {
    summary:
      'The whole pipeline on a local DICOM study: report, masks, FHIR bundle, ORU, DICOM SEG/SR/overlay',
    load: () => import('./analyze.ts'),
  },
  dicom2nifti: {
    summary: 'Every series of a DICOM folder to .nii.gz + JSON sidecar (classification, geometry)',
    load: () => import('./dicom2nifti.ts'),
  },
  'import-nifti': {
    summary: 'Research import: NIfTI FLAIR [+ T2, T1] to an MR DICOM study (folder, optionally STOW-RS)',
    load: () => import('./import-nifti.ts'),
  },
  evaluate: {
    summary: 'Dice and MSSEG lesion-wise scores of a prediction vs a reference (or a batch CSV)',
    load: () => import('./evaluate.ts'),
  },
  longitudinal: {
    summary:
      'Lesion change (new / enlarged / …) between a prior and a current exam: change mask, table, summary',
    load: () => import('./longitudinal.ts'),
  },
  segment: {
    summary: 'Lesion mask (and probabilities) on the FLAIR grid from NIfTI FLAIR [+ T2, T1]',
    load: () => import('./segment.ts'),
  },
  serve: {
    summary: 'Run the service: --role api|worker|inference|all (default all)',
    load: () => import('./serve.ts'),
  },
};
