/**
 * Image layers as reproducible tar streams, written by hand (POSIX ustar with pax extended
 * headers for long names): an image layer needs what the release tarball does not (an owner
 * per entry, the 65532 user's writable directories) and nothing a general tar library adds
 * (no user names, no atime/ctime, no platform bits). Same entries in, same bytes out: entries
 * are written in the order given (callers sort), with one mtime.
 *
 * Also the reverse, a header walk over a layer (gzip or plain) that lists its paths, for the
 * base image's glibc check.
 */
import { gunzipSync } from 'node:zlib';

export type LayerEntry =
  | { type: 'dir'; path: string; mode: number; uid: number; gid: number }
  | { type: 'file'; path: string; mode: number; uid: number; gid: number; data: Buffer }
  | { type: 'symlink'; path: string; target: string; uid: number; gid: number };

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function writeString(buf: Buffer, offset: number, width: number, s: string): void {
  buf.write(s, offset, width, 'utf8');
}

/** A header block; `name` and `linkname` must already fit (ustar limits). */
function headerBlock(h: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; typeflag: string; linkname?: string; prefix?: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeString(b, 0, 100, h.name);
  writeString(b, 100, 8, octal(h.mode & 0o7777, 8));
  writeString(b, 108, 8, octal(h.uid, 8));
  writeString(b, 116, 8, octal(h.gid, 8));
  writeString(b, 124, 12, octal(h.size, 12));
  writeString(b, 136, 12, octal(h.mtime, 12));
  b.fill(0x20, 148, 156); // checksum counted as spaces
  writeString(b, 156, 1, h.typeflag);
  if (h.linkname !== undefined) writeString(b, 157, 100, h.linkname);
  writeString(b, 257, 6, 'ustar\0');
  writeString(b, 263, 2, '00');
  if (h.prefix !== undefined) writeString(b, 345, 155, h.prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  writeString(b, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return b;
}

/** ustar's name/prefix split of `name`, or undefined when it needs a pax header. */
function ustarName(name: string): { name: string; prefix?: string } | undefined {
  if (Buffer.byteLength(name) <= 100) return { name };
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') return { name: rest, prefix };
  }
  return undefined;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body);
  let total = len + String(len).length;
  while (total !== len + String(total).length) total = len + String(total).length;
  len = total;
  return `${len}${body}`;
}

function padded(data: Buffer): Buffer[] {
  const rem = data.length % BLOCK;
  return rem === 0 ? [data] : [data, Buffer.alloc(BLOCK - rem)];
}

/** The tar bytes of the entries, in the given order, all with `mtime` (seconds). */
export function layerTar(entries: readonly LayerEntry[], mtime: number): Buffer {
  return Buffer.concat(layerTarParts(entries, mtime));
}

/** As {@link layerTar}, in pieces (the file data not copied): for hashing before deciding to gzip. */
export function layerTarParts(entries: readonly LayerEntry[], mtime: number): Buffer[] {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const name = e.type === 'dir' ? `${e.path.replace(/\/+$/, '')}/` : e.path;
    const linkname = e.type === 'symlink' ? e.target : undefined;
    const split = ustarName(name);
    const pax: string[] = [];
    if (split === undefined) pax.push(paxRecord('path', name));
    if (linkname !== undefined && Buffer.byteLength(linkname) > 100) pax.push(paxRecord('linkpath', linkname));
    if (pax.length > 0) {
      const body = Buffer.from(pax.join(''));
      parts.push(headerBlock({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, typeflag: 'x' }), ...padded(body));
    }
    const hName = split ?? { name: name.slice(0, 100) };
    const size = e.type === 'file' ? e.data.length : 0;
    const mode = e.type === 'symlink' ? 0o777 : e.mode;
    const typeflag = e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0';
    parts.push(headerBlock({ ...hName, mode, uid: e.uid, gid: e.gid, size, mtime, typeflag, linkname: linkname?.slice(0, 100) }));
    if (e.type === 'file' && size > 0) parts.push(...padded(e.data));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return parts;
}

export interface TarListing {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'other';
  linkname: string;
}

/** The entries of a tar (gzip-compressed or not): paths without a leading `./` or `/`. */
export function listTar(data: Buffer): TarListing[] {
  const tar = data.length > 2 && data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : data;
  const out: TarListing[] = [];
  let offset = 0;
  let paxPath: string | undefined;
  let paxLink: string | undefined;
  let gnuLong: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const h = tar.subarray(offset, offset + BLOCK);
    if (h.every((b) => b === 0)) break;
    const field = (start: number, len: number) => h.toString('utf8', start, start + len).replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const typeflag = field(156, 1) || '0';
    const body = tar.subarray(offset + BLOCK, offset + BLOCK + size);
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === 'x') {
      for (const m of body.toString('utf8').matchAll(/\d+ (path|linkpath)=([^\n]*)\n/g)) {
        if (m[1] === 'path') paxPath = m[2];
        else paxLink = m[2];
      }
      continue;
    }
    if (typeflag === 'L') {
      gnuLong = body.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (typeflag === 'g' || typeflag === 'K') continue;
    const prefix = field(345, 155);
    const name = paxPath ?? gnuLong ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    const linkname = paxLink ?? field(157, 100);
    paxPath = paxLink = gnuLong = undefined;
    const type = typeflag === '5' ? 'dir' : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'link' : typeflag === '0' || typeflag === '7' ? 'file' : 'other';
    out.push({ path: name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, ''), type, linkname });
  }
  return out;
}
