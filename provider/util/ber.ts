/**
 * A small, strict BER reader: the tree of tag-length-value elements of a byte string, as offsets into it (no
 * copies, no typed objects), for the few fixed shapes we verify (CMS SignedData). It reads single-byte tags only,
 * long-form lengths of at most 4 bytes in their shortest form, and indefinite lengths on constructed elements,
 * which callers must then allow where they expect them (see {@link BerTree.indefinite}).
 */

/** A BER element: its tag byte and where its header, content and end lie in the buffer it was read from. */
export interface BerNode {
  /** The identifier octet: class (2 bits), constructed (1 bit), tag number (5 bits). */
  tag: number;
  start: number;
  contentStart: number;
  /** End of the content: for an indefinite length, the start of its end-of-contents octets. */
  contentEnd: number;
  /** End of the whole element (after its end-of-contents octets, if indefinite). */
  end: number;
  /** Whether the length was written as indefinite (0x80 ... 00 00). */
  indefinite: boolean;
  /** The elements inside a constructed element; empty for a primitive one. */
  children: BerNode[];
}

/** A parsed buffer: its root element and every element written with an indefinite length. */
export interface BerTree {
  buf: Uint8Array;
  root: BerNode;
  /** The elements with indefinite lengths, so a caller can refuse any it did not expect. */
  indefinite: BerNode[];
}

/** A BER encoding error, with the byte offset where it was found. */
export class BerError extends Error {
  constructor(
    reason: string,
    /** Offset of the element at fault. */
    public readonly offset: number,
  ) {
    super(`${reason} at byte ${offset}`);
    this.name = "BerError";
  }
}

/** Deepest nesting read; a certificate nests about 10 deep, so this only stops hostile recursion. */
export const MAX_BER_DEPTH = 32;

const CONSTRUCTED = 0x20;

function readNode(buf: Uint8Array, pos: number, limit: number, depth: number, indefinite: BerNode[]): BerNode {
  const start = pos;
  if (depth > MAX_BER_DEPTH) throw new BerError(`nesting deeper than ${MAX_BER_DEPTH}`, start);
  if (pos + 2 > limit) throw new BerError("element header runs past its end", start);
  const tag = buf[pos++];
  if ((tag & 0x1f) === 0x1f) throw new BerError("multi-byte tag numbers are not accepted", start);
  if (tag === 0) throw new BerError("unexpected end-of-contents", start);
  const constructed = (tag & CONSTRUCTED) !== 0;
  const first = buf[pos++];
  const children: BerNode[] = [];
  if (first === 0x80) {
    if (!constructed) throw new BerError("indefinite length on a primitive element", start);
    const node: BerNode = { tag, start, contentStart: pos, contentEnd: 0, end: 0, indefinite: true, children };
    for (;;) {
      if (pos + 2 > limit) throw new BerError("indefinite length without end-of-contents", start);
      if (buf[pos] === 0 && buf[pos + 1] === 0) break;
      const child = readNode(buf, pos, limit, depth + 1, indefinite);
      children.push(child);
      pos = child.end;
    }
    node.contentEnd = pos;
    node.end = pos + 2;
    indefinite.push(node);
    return node;
  }
  let length = first;
  if (first & 0x80) {
    const bytes = first & 0x7f;
    if (bytes > 4) throw new BerError(`a ${bytes}-byte length`, start);
    if (pos + bytes > limit) throw new BerError("length runs past its end", start);
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + buf[pos++];
    // Shortest form only: a long form must need its bytes, so one value has one encoding.
    if (length < 0x80 || length < 256 ** (bytes - 1)) throw new BerError("a length not in its shortest form", start);
  }
  const contentStart = pos;
  const end = contentStart + length;
  if (end > limit) throw new BerError("length runs past its parent", start);
  if (constructed) {
    while (pos < end) {
      const child = readNode(buf, pos, end, depth + 1, indefinite);
      children.push(child);
      pos = child.end;
    }
  }
  return { tag, start, contentStart, contentEnd: end, end, indefinite: false, children };
}

/** Reads `buf` as exactly one BER element (trailing bytes are an error) with all its constructed descendants. */
export function parseBer(buf: Uint8Array): BerTree {
  const indefinite: BerNode[] = [];
  const root = readNode(buf, 0, buf.byteLength, 0, indefinite);
  if (root.end !== buf.byteLength) throw new BerError(`${buf.byteLength - root.end} bytes after the element`, root.end);
  return { buf, root, indefinite };
}

/** The content octets of `node` (a view, not a copy). */
export const contentOf = (buf: Uint8Array, node: BerNode): Uint8Array =>
  buf.subarray(node.contentStart, node.contentEnd);

/** The whole encoding of `node`, header included (a view, not a copy). */
export const encodingOf = (buf: Uint8Array, node: BerNode): Uint8Array => buf.subarray(node.start, node.end);

/** An OBJECT IDENTIFIER's content octets in dotted form, e.g. `1.2.840.113549.1.7.2`; throws if malformed. */
export function oidText(buf: Uint8Array, node: BerNode): string {
  if (node.tag !== 0x06) throw new BerError("not an OBJECT IDENTIFIER", node.start);
  const arcs: number[] = [];
  let value = 0;
  let fresh = true;
  for (let i = node.contentStart; i < node.contentEnd; i++) {
    const b = buf[i];
    // A leading 0x80 pads an arc: two encodings of one OID, so refused as DER does.
    if (fresh && b === 0x80) throw new BerError("an OID arc with a leading zero", node.start);
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new BerError("an OID arc too large", node.start);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      arcs.push(value);
      value = 0;
    }
  }
  if (!fresh || arcs.length === 0) throw new BerError("a truncated OID", node.start);
  const first = Math.min(2, Math.floor(arcs[0] / 40));
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join(".");
}
