// digest.ts: SHA-256 and HMAC-SHA256 in plain JS (the node runtime avoids loading node:crypto),
// checked against node:crypto and the published test vectors.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, hmacSha256, randomBytes, sha256 } from '../../src/node/control/digest.js';

const nodeSha = (d: Uint8Array | string) => crypto.createHash('sha256').update(d).digest('hex');
const nodeHmac = (k: Uint8Array | string, m: Uint8Array | string) => crypto.createHmac('sha256', k).update(m).digest('hex');

describe('sha256', () => {
  it('matches the FIPS 180-4 examples', () => {
    expect(sha256('').toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256('abc').toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq').toString('hex')).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('matches node:crypto for every length around the block and padding boundaries, and for random data', () => {
    for (let n = 0; n <= 200; n++) {
      const data = crypto.randomBytes(n);
      expect(sha256(data).toString('hex'), `length ${n}`).toBe(nodeSha(data));
    }
    const big = crypto.randomBytes(100_003);
    expect(sha256(big).toString('hex')).toBe(nodeSha(big));
    expect(sha256('héllo wörld ✓').toString('hex')).toBe(nodeSha('héllo wörld ✓'));
  });
});

describe('hmacSha256', () => {
  it('matches RFC 4231 test case 2 and node:crypto for short, block-sized and long keys', () => {
    expect(hmacSha256('Jefe', 'what do ya want for nothing?').toString('hex')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    for (const keyLength of [0, 1, 20, 63, 64, 65, 131]) {
      for (let i = 0; i < 10; i++) {
        const key = crypto.randomBytes(keyLength);
        const msg = crypto.randomBytes(i * 37);
        expect(hmacSha256(key, msg).toString('hex'), `key ${keyLength}, message ${msg.length}`).toBe(nodeHmac(key, msg));
      }
    }
    const cookie = crypto.randomBytes(32).toString('base64url');
    const challenge = `noderel-control-v1:${crypto.randomBytes(32).toString('base64')}`;
    expect(hmacSha256(cookie, challenge).toString('hex')).toBe(nodeHmac(cookie, challenge));
  });
});

describe('constantTimeEqual and randomBytes', () => {
  it('compares by content and length', () => {
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abc'))).toBe(true);
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abd'))).toBe(false);
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abcd'))).toBe(false);
    expect(constantTimeEqual(Buffer.alloc(0), Buffer.alloc(0))).toBe(true);
  });

  it('gives the length asked for, and different bytes each time', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect(a.length).toBe(32);
    expect(a.equals(b)).toBe(false);
    expect(randomBytes(0).length).toBe(0);
    expect(new Set(Array.from({ length: 50 }, () => randomBytes(4).toString('hex'))).size).toBe(50);
  });
});
