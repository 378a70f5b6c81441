/**
 * A model folder describes itself: models/<id>/manifest.json (JSON Schema in models/manifest.schema.json).
 * One manifest, several variants (one ONNX file each) that differ only in their input channels, e.g.
 * FLAIR+T2+T1, FLAIR+T2, FLAIR. The registry verifies the schema and each file's sha256 at start.
 *
 * Tensor convention: input float32 [N, C, D, H, W] where, after the volume is reoriented to `orientation`
 * (DICOM letters: the patient direction each voxel axis points to) and resampled to `spacing`,
 * W = voxel axis i, H = j, D = k — i.e. the domain Volume buffer (i fastest) *is* the C-order DHW array.
 * In numpy/nibabel terms: arr = nib.as_closest_canonical(img) (for 'RAS'); x = arr.transpose(2, 1, 0).
 * All spatial lists (spacing, patchSize, mirrorAxes) are in D, H, W order.
 */

export type ChannelName = 'FLAIR' | 'T2' | 'T1' | 'T1C' | 'PD' | 'ANY';

export type NormalizationMethod = 'zscore' | 'minmax' | 'fixed' | 'none';

export interface ChannelNormalization {
  /**
   * zscore: (x − mean) / std over the mask; minmax: (x − lo) / (hi − lo) clipped to [0, 1]; fixed: clipped to
   * `clipValues` then (x − mean) / std with the manifest's dataset-wide values (nnU-Net's CTNormalization);
   * none: as is.
   */
  readonly method: NormalizationMethod;
  /** Which voxels define the statistics: inside the brain mask, non-zero voxels, or all voxels. */
  readonly mask: 'brain' | 'nonzero' | 'all';
  /** Clip to these percentiles of the masked voxels before normalising (e.g. [0.5, 99.5]). */
  readonly clipPercentiles?: readonly [number, number];
  /** Value written outside the mask after normalising (default 0). */
  readonly outsideValue?: number;
  /** 'fixed' only: clip to these intensities first. */
  readonly clipValues?: readonly [number, number];
  /** 'fixed' only: dataset-wide mean (default 0) and standard deviation (default 1). */
  readonly mean?: number;
  readonly std?: number;
}

export interface ModelVariant {
  /** e.g. 'flair-t2-t1'. */
  readonly id: string;
  /** Input channels in tensor order. */
  readonly channels: readonly ChannelName[];
  /** ONNX file name inside the model folder. */
  readonly file: string;
  readonly sha256: string;
}

export interface ModelManifest {
  readonly schemaVersion: 1;
  readonly id: string;
  readonly name: string;
  readonly version: string;
  /** 'ms-lesion-segmentation' | 'brain-extraction' | 'brain-parcellation' | … */
  readonly task: string;
  /** Algorithm family (IHE AI Results / DICOM: e.g. 'Artificial Intelligence', 'Deep Learning'). */
  readonly family: string;
  readonly license: string;
  readonly intendedUse: string;
  readonly authors?: string;
  /** Orientation (DICOM letters) the array axes must follow before W=i, H=j, D=k; e.g. 'RAS', 'LIA'. */
  readonly orientation: string;
  /** Target voxel spacing in mm, D, H, W order. */
  readonly spacing: readonly [number, number, number];
  readonly inference:
    | {
        readonly mode: 'sliding-window';
        /** Patch size, D, H, W. */
        readonly patchSize: readonly [number, number, number];
        /** Step as a fraction of the patch (nnU-Net default 0.5). */
        readonly tileStep: number;
        /** Gaussian importance weighting (σ = patch/8). */
        readonly gaussian: boolean;
        /** Spatial tensor axes (0 = D, 1 = H, 2 = W) allowed for test-time mirroring. */
        readonly mirrorAxes: readonly number[];
        /** Patches per session.run call. */
        readonly batchSize?: number;
      }
    | {
        readonly mode: 'whole-volume';
        /** The network's fixed input shape D, H, W: the volume is centre-padded/cropped to it. */
        readonly shape: readonly [number, number, number];
      };
  readonly normalization: Readonly<Partial<Record<ChannelName, ChannelNormalization>>>;
  readonly input: { readonly name: string };
  readonly output: {
    readonly name: string;
    /** 'logits' (softmax/sigmoid applied by the service) or 'probabilities'. */
    readonly kind: 'logits' | 'probabilities';
    readonly activation: 'softmax' | 'sigmoid';
    /** Label names by output channel (softmax) or the single foreground label (sigmoid). */
    readonly labels: readonly string[];
  };
  /** Index (into labels) of the foreground class used for binary masks. */
  readonly foregroundLabel: number;
  /** Probability threshold of the foreground class. */
  readonly threshold: number;
  readonly variants: readonly ModelVariant[];
  /** Free-form provenance (training data, evaluation summary). */
  readonly training?: Readonly<Record<string, unknown>>;
}
