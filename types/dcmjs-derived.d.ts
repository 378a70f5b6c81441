/**
 * Typings for the parts of dcmjs (0.52) the derived-object writers use (adapters/dicom/derived), merged into
 * the `declare module 'dcmjs'` of types/dcmjs.d.ts (kept a script file — no top-level import/export — so
 * the declarations merge).
 */
declare module 'dcmjs' {
  export namespace data {
    /** CIELab conversions as DICOM encodes them (L*, a*, b* scaled to 0–65535). */
    namespace Colors {
      /** sRGB with components 0–255 → DICOM-scaled CIELab. */
      function rgb82DICOMLAB(rgb: readonly number[]): number[];
      /** DICOM-scaled CIELab → sRGB with components 0–255. */
      function dicomlab2RGB8(lab: readonly number[]): number[];
    }
  }
}
