/**
 * Colours shared by every rendering of the results (overlay PNGs, the Secondary Capture preview series, the
 * PDF report) and the recommended display colours of the DICOM SEG segments, so that a lesion looks the same
 * in the PACS viewer, the preview series and the report.
 */
export type Rgb = readonly [number, number, number];

/** Outline of every segmented lesion. */
export const LESION_RGB: Rgb = [255, 64, 48];
/** Outline of new or enlarging lesions (only with a prior exam). */
export const CHANGE_RGB: Rgb = [0, 220, 255];
/** Burned-in annotation text. */
export const ANNOTATION_RGB: Rgb = [255, 214, 10];
/** Report accents. */
export const ACCENT_RGB: Rgb = [24, 72, 120];

export function hex(rgb: Rgb): string {
  return '#' + rgb.map((v) => v.toString(16).padStart(2, '0')).join('');
}
