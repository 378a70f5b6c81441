/**
 * Narrow hand-written typings for the parts of dcmjs (0.52) that DICOM ingestion and the MR writers use
 * (dcmjs ships none). This file is a script (no top-level import/export) so its `declare module 'dcmjs'`
 * merges with other declaration files for the same module (e.g. types/dcmjs-derived.d.ts): add what you
 * need there as new members of the `data`/other namespaces or as new namespaces. Import named members
 * (`import { data } from 'dcmjs'`); no default export is declared here.
 */
declare module 'dcmjs' {
  /** One element in dcmjs' tag-keyed ("denaturalized", DICOM JSON model) form. */
  export interface DcmjsElement {
    vr: string;
    Value?: unknown[];
  }

  /** A tag-keyed dataset: keys are 8 hex digits ('0020000D'). */
  export type DenaturalizedDataset = Record<string, DcmjsElement>;

  /**
   * A keyword-named dataset (DicomMetaDictionary.naturalizeDataset): single values unwrapped, multi-valued
   * attributes as arrays, sequences as arrays of datasets, bulk data (PixelData) as ArrayBuffer[]. Values
   * are `unknown` on purpose: read them through a checked accessor.
   */
  export interface NaturalizedDataset {
    [keyword: string]: unknown;
    /** VRs to use for keywords whose VR is data-dependent (PixelData: 'OW' | 'OB'). */
    _vrMap?: Record<string, string>;
  }

  export interface ReadOptions {
    ignoreErrors?: boolean;
    /** Stop before this tag (8 hex digits, e.g. '7FE00010'). */
    untilTag?: string | null;
    includeUntilTagValue?: boolean;
    noCopy?: boolean;
    forceStoreRaw?: boolean;
  }

  export interface WriteOptions {
    allowInvalidVRLength?: boolean;
    fragmentMultiframe?: boolean;
  }

  export interface DictionaryEntry {
    tag: string;
    vr: string;
    name: string;
    vm: string;
  }

  export namespace data {
    class DicomDict {
      constructor(meta: DenaturalizedDataset);
      meta: DenaturalizedDataset;
      dict: DenaturalizedDataset;
      /** Part-10 bytes (preamble, DICM, meta group, dataset in the meta's transfer syntax). */
      write(options?: WriteOptions): ArrayBuffer;
    }

    interface DicomMessageStatic {
      /** Parses Part-10 bytes; throws on a missing preamble/DICM or a malformed element. */
      readFile(buffer: ArrayBuffer, options?: ReadOptions): DicomDict;
    }
    const DicomMessage: DicomMessageStatic;

    interface DicomMetaDictionaryStatic {
      naturalizeDataset(dataset: DenaturalizedDataset): NaturalizedDataset;
      denaturalizeDataset(dataset: NaturalizedDataset): DenaturalizedDataset;
      /** Keyword → entry. */
      nameMap: Record<string, DictionaryEntry | undefined>;
      /** '(GGGG,EEEE)' → entry. */
      dictionary: Record<string, DictionaryEntry | undefined>;
    }
    /** Static helpers; add members in another file by augmenting `DicomMetaDictionaryStatic`. */
    const DicomMetaDictionary: DicomMetaDictionaryStatic;
  }

  /** dcmjs' logger (loglevel). */
  export namespace log {
    function setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void;
    function getLevel(): number;
    /** A named child logger (dcmjs validation warnings go to 'validation.dcmjs'). */
    function getLogger(name: string): {
      setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void;
    };
  }
}
