/**
 * SHA-256, HMAC-SHA256 (FIPS 180-4, RFC 2104), a constant-time compare and random bytes, for the
 * control channel's challenge-response, the node lock's name and temp file names.
 *
 * Why not node:crypto: loading it (OpenSSL's bindings, 15 internal modules) costs every process
 * about 10 ms of startup and 2.5 MiB of RSS (bench/README.md), and each of our processes needs
 * one or two digests of a few bytes: a `ping` client is measured against `node -e 0`, and the
 * master's memory against pm2's. Checked against node:crypto on random inputs (test/unit/digest).
 * Random bytes come from the kernel (/dev/urandom), or node:crypto where there is none.
 */
import { closeSync, openSync, readSync } from 'node:fs';

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const BLOCK = 64;

function bytesOf(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** SHA-256 of `data` (a string is hashed as UTF-8). */
export function sha256(data: string | Uint8Array): Buffer {
  const msg = bytesOf(data);
  const bitLength = msg.length * 8;
  // message, 0x80, zeros, 64-bit big-endian length: a whole number of 64-byte blocks
  const padded = new Uint8Array(Math.ceil((msg.length + 9) / BLOCK) * BLOCK);
  padded.set(msg);
  padded[msg.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));
  view.setUint32(padded.length - 4, bitLength >>> 0);

  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += BLOCK) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!;
      const b = w[i - 2]!;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h as unknown as [number, number, number, number, number, number, number, number];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i]! + w[i]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = h[0]! + a;
    h[1] = h[1]! + b;
    h[2] = h[2]! + c;
    h[3] = h[3]! + d;
    h[4] = h[4]! + e;
    h[5] = h[5]! + f;
    h[6] = h[6]! + g;
    h[7] = h[7]! + hh;
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) out.writeUInt32BE(h[i]!, i * 4);
  return out;
}

/** HMAC-SHA256(key, message) (RFC 2104; strings as UTF-8). */
export function hmacSha256(key: string | Uint8Array, message: string | Uint8Array): Buffer {
  let k = bytesOf(key);
  if (k.length > BLOCK) k = sha256(k);
  const inner = new Uint8Array(BLOCK);
  const outer = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    const byte = k[i] ?? 0;
    inner[i] = byte ^ 0x36;
    outer[i] = byte ^ 0x5c;
  }
  const msg = bytesOf(message);
  const innerMsg = new Uint8Array(BLOCK + msg.length);
  innerMsg.set(inner);
  innerMsg.set(msg, BLOCK);
  const outerMsg = new Uint8Array(BLOCK + 32);
  outerMsg.set(outer);
  outerMsg.set(sha256(innerMsg), BLOCK);
  return sha256(outerMsg);
}

/** Whether `a` and `b` are equal, in a time that depends only on their length. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** `n` cryptographically strong random bytes. */
export function randomBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  let fd: number | undefined;
  try {
    fd = openSync('/dev/urandom', 'r');
    let got = 0;
    while (got < n) {
      const r = readSync(fd, out, got, n - got, null);
      if (r <= 0) throw new Error('short read from /dev/urandom');
      got += r;
    }
    return out;
  } catch {
    const crypto = process.getBuiltinModule('node:crypto') as typeof import('node:crypto');
    return crypto.randomBytes(n);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
