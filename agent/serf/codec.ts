/**
 * msgpack encoding and stream decoding for Serf RPC. Encoding follows what the Go decoder accepts
 * (plain maps, `str` strings, `bin` payloads, integers never as floats); decoding turns a byte
 * stream that may split or join values arbitrarily into whole values.
 */
import { Packr, Unpackr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import { errorMessage } from '../../core/errors.js';

// Plain maps only: msgpackr's record extension is not msgpack Go understands.
const packr = new Packr({ useRecords: false, variableMapSize: true });
// 'auto' (numbers up to 2^53, BigInt beyond) exists at run time but is missing from msgpackr's types.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'number' });

/**
 * Integers at or above 2^32 would be packed as float64 by msgpackr, which Go refuses for integer
 * fields; BigInt packs as int64.
 */
export function wireInt(n: number | bigint): number | bigint {
  if (typeof n === 'bigint') return n;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`not a non-negative integer: ${n}`);
  return n >= 2 ** 32 ? BigInt(n) : n;
}

/** Encodes a header and optional body as one buffer, so one write puts both on the wire together. */
export function encodeMessage(header: object, body?: object): Buffer {
  const head = packr.pack(header);
  return body === undefined ? Buffer.from(head) : Buffer.concat([head, packr.pack(body)]);
}

/** Encodes a single value (tests and the fake server use this to build frames). */
export function encodeValue(value: unknown): Buffer {
  return Buffer.from(packr.pack(value));
}

/**
 * Incremental decoder: feed chunks, get back every complete value. A value still incomplete
 * after `maxValueBytes` buffered bytes is treated as a protocol error rather than buffered forever.
 */
export class StreamDecoder {
  private tail: Buffer | undefined;

  constructor(private readonly maxValueBytes: number) {}

  /** Bytes held for a value that has not fully arrived yet. */
  get pendingBytes(): number {
    return this.tail?.length ?? 0;
  }

  /** Returns the complete values in `chunk` (plus any held tail); throws `ProtocolError` on garbage. */
  push(chunk: Buffer): unknown[] {
    const buf = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    this.tail = undefined;
    try {
      return unpackr.unpackMultiple(buf) ?? [];
    } catch (err) {
      const partial = err as { incomplete?: boolean; values?: unknown[]; lastPosition?: number };
      if (!partial.incomplete) {
        throw new ProtocolError(`undecodable msgpack from serf: ${errorMessage(err)}`, { cause: err });
      }
      const rest = buf.subarray(partial.lastPosition ?? 0);
      if (rest.length > this.maxValueBytes) {
        throw new ProtocolError(`serf sent a value larger than ${this.maxValueBytes} bytes (${rest.length} buffered and incomplete)`);
      }
      this.tail = Buffer.from(rest);
      return partial.values ?? [];
    }
  }
}
