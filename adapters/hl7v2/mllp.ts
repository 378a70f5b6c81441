/**
 * MLLP framing (HL7 v2 over TCP): <VT> message <FS><CR>. A streaming decoder with a hard size limit — an
 * oversized frame is not buffered: its first bytes are kept (for the MSH, so the NAK can name the message)
 * and the rest is discarded up to the frame end, after which decoding resumes. Bytes outside frames are
 * ignored. @medplum/hl7's Hl7Connection buffers without a limit, which is why the listener frames itself.
 */
export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;

export interface MllpDecoderOptions {
  readonly maxMessageBytes: number;
  onMessage(payload: Buffer): void;
  /** An oversized frame ended: `head` holds its first bytes, `size` its full length. */
  onOversized(head: Buffer, size: number): void;
}

const HEAD_BYTES = 2048;

export class MllpDecoder {
  private readonly options: MllpDecoderOptions;
  private state: 'idle' | 'reading' | 'skipping' = 'idle';
  private chunks: Buffer[] = [];
  private size = 0;
  private head: Buffer = Buffer.alloc(0);
  /** The previous chunk ended with FS inside a frame (the CR may come next). */
  private pendingFs = false;

  constructor(options: MllpDecoderOptions) {
    if (!(options.maxMessageBytes > 0)) throw new RangeError('maxMessageBytes must be positive');
    this.options = options;
  }

  /** Bytes held for the current frame (never more than maxMessageBytes + one chunk). */
  get buffered(): number {
    return this.state === 'reading' ? this.size : 0;
  }

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'idle') {
        const start = chunk.indexOf(VT, i);
        if (start < 0) return;
        this.state = 'reading';
        this.chunks = [];
        this.size = 0;
        this.pendingFs = false;
        i = start + 1;
        continue;
      }
      if (this.pendingFs) {
        this.pendingFs = false;
        if (chunk[i] === CR) {
          this.finishFrame();
          i += 1;
          continue;
        }
        // A lone FS inside the payload: keep it as data.
        this.append(Buffer.from([FS]));
      }
      let end = -1;
      let search = i;
      for (;;) {
        const fs = chunk.indexOf(FS, search);
        if (fs < 0) break;
        if (fs + 1 >= chunk.length) {
          // FS at the end of the chunk: the frame may end with the next chunk's first byte.
          this.append(chunk.subarray(i, fs));
          this.pendingFs = true;
          return;
        }
        if (chunk[fs + 1] === CR) {
          end = fs;
          break;
        }
        search = fs + 1;
      }
      if (end < 0) {
        this.append(chunk.subarray(i));
        return;
      }
      this.append(chunk.subarray(i, end));
      this.finishFrame();
      i = end + 2;
    }
  }

  private append(data: Buffer): void {
    if (data.length === 0) return;
    if (this.state === 'skipping') {
      this.size += data.length;
      return;
    }
    if (this.size + data.length > this.options.maxMessageBytes) {
      const all = Buffer.concat([...this.chunks, data]);
      this.head = Buffer.from(all.subarray(0, HEAD_BYTES));
      this.size += data.length;
      this.chunks = [];
      this.state = 'skipping';
      return;
    }
    this.chunks.push(data);
    this.size += data.length;
  }

  private finishFrame(): void {
    const oversized = this.state === 'skipping';
    const payload = oversized ? this.head : Buffer.concat(this.chunks);
    const size = this.size;
    this.state = 'idle';
    this.chunks = [];
    this.size = 0;
    this.head = Buffer.alloc(0);
    if (oversized) this.options.onOversized(payload, size);
    else this.options.onMessage(payload);
  }
}

/** Wraps one message in an MLLP frame. */
export function mllpFrame(payload: Buffer): Buffer {
  const out = Buffer.alloc(payload.length + 3);
  out[0] = VT;
  payload.copy(out, 1);
  out[payload.length + 1] = FS;
  out[payload.length + 2] = CR;
  return out;
}
