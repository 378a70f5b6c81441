/**
 * The project's 5×7 bitmap font (drawn for this project), shared by every raster renderer: chart labels
 * (adapters/plot/chart.ts) and the text burned into images — the "AI-generated / not for diagnosis" banner of
 * the overlay figures and of the DICOM Secondary Capture preview series (adapters/report/overlay.ts).
 * A–Z, 0–9 and common punctuation; lower case is drawn as small capitals; any other character as "?".
 * Each glyph is 7 rows of 5 bits, most significant bit = leftmost pixel.
 */
const GLYPHS: Readonly<Partial<Record<string, readonly number[]>>> = {
  ' ': [0, 0, 0, 0, 0, 0, 0],
  A: [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
  B: [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110],
  C: [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
  D: [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100],
  E: [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
  F: [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
  G: [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
  H: [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
  I: [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
  J: [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
  K: [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
  L: [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
  M: [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
  N: [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
  O: [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
  P: [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
  Q: [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101],
  R: [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
  S: [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
  T: [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
  U: [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
  V: [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
  W: [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
  X: [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
  Y: [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100],
  Z: [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111],
  '0': [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
  '1': [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
  '2': [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
  '3': [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
  '4': [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
  '5': [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
  '6': [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
  '7': [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
  '8': [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
  '9': [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
  '.': [0, 0, 0, 0, 0, 0b01100, 0b01100],
  ',': [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
  ':': [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
  ';': [0, 0b01100, 0b01100, 0, 0b01100, 0b00100, 0b01000],
  '-': [0, 0, 0, 0b11111, 0, 0, 0],
  '−': [0, 0, 0, 0b11111, 0, 0, 0],
  '–': [0, 0, 0, 0b11111, 0, 0, 0],
  '—': [0, 0, 0, 0b11111, 0, 0, 0],
  '+': [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
  '±': [0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0, 0b11111],
  '=': [0, 0, 0b11111, 0, 0b11111, 0, 0],
  '×': [0, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0],
  '/': [0b00001, 0b00010, 0b00010, 0b00100, 0b01000, 0b01000, 0b10000],
  '%': [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011],
  '(': [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010],
  ')': [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000],
  '[': [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110],
  ']': [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110],
  _: [0, 0, 0, 0, 0, 0, 0b11111],
  "'": [0b00100, 0b00100, 0b01000, 0, 0, 0, 0],
  '"': [0b01010, 0b01010, 0, 0, 0, 0, 0],
  '#': [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010],
  '<': [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010],
  '>': [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000],
  '?': [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100],
  '!': [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0, 0b00100],
  '°': [0b01100, 0b10010, 0b10010, 0b01100, 0, 0, 0],
  '³': [0b11100, 0b00100, 0b11100, 0b00100, 0b11100, 0, 0],
  '·': [0, 0, 0, 0b01100, 0b01100, 0, 0],
};

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character (glyph + one column gap), in font pixels. */
export const ADVANCE = 6;

const UNKNOWN = GLYPHS['?']!;

/** Small capitals for lower case: the upper-case glyph squeezed into rows 2–6. */
function smallCap(upper: readonly number[]): number[] {
  return [0, 0, upper[0], upper[2], upper[3], upper[5], upper[6]];
}

/** True when the font draws `ch` (itself, or as a small capital) rather than the "?" fallback. */
export function hasGlyph(ch: string): boolean {
  return GLYPHS[ch] !== undefined || GLYPHS[ch.toUpperCase()] !== undefined;
}

/** The glyph rows of a character (5-bit patterns, most significant bit left). */
export function glyph(ch: string): readonly number[] {
  const g = GLYPHS[ch];
  if (g !== undefined) return g;
  const up = ch.toUpperCase();
  if (up !== ch) {
    const u = GLYPHS[up];
    if (u !== undefined) return smallCap(u);
  }
  return UNKNOWN;
}

/** Width in image pixels of a text at a scale (the gap after the last character excluded; 0 when empty). */
export function textWidth(text: string, scale: number): number {
  const n = Array.from(text).length;
  return n === 0 ? 0 : (n * ADVANCE - 1) * scale;
}

/**
 * Calls `visit(x, y)` for every set pixel of `text` in font pixels: x from the left of the first character
 * (ADVANCE per character), y from the top row (0–6). Renderers scale and place the pixels.
 */
export function forEachTextPixel(text: string, visit: (x: number, y: number) => void): void {
  let left = 0;
  for (const ch of text) {
    const rows = glyph(ch);
    for (let row = 0; row < GLYPH_HEIGHT; row++)
      for (let col = 0; col < GLYPH_WIDTH; col++)
        if (((rows[row] >> (GLYPH_WIDTH - 1 - col)) & 1) !== 0) visit(left + col, row);
    left += ADVANCE;
  }
}
