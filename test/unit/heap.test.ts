import { describe, expect, it } from 'vitest';
import { collectBootGarbage, describeBootGc } from '../../src/node/supervision/heap.js';

describe('collectBootGarbage', () => {
  it('runs a real full collection: garbage made just before is gone afterwards', () => {
    // made in a frame of its own, gone before the collection (a frame still running may hold it)
    const made = ((): number => Array.from({ length: 200_000 }, (_, i) => ({ i, s: `item ${i}` })).length)();
    expect(made).toBe(200_000);
    const r = collectBootGarbage({});
    expect(r).toBeDefined();
    expect(r!.skipped).toBeUndefined();
    // 200,000 objects and strings: well over 5 MiB that the collection gave back
    expect(r!.heapBefore - r!.heapAfter).toBeGreaterThan(5 * 1024 * 1024);
    expect(r!.ms).toBeGreaterThan(0);
    expect(describeBootGc(r!)).toMatch(/^garbage collected after boot in \d+\.\d ms: heap [\d.]+ MiB -> [\d.]+ MiB, rss [\d.]+ MiB -> [\d.]+ MiB$/);
    // `gc` stays hidden from the program: the flag was set for one context only
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });

  it('NODEREL_GC_AFTER_BOOT=0 turns it off; a heap over the limit is left alone', () => {
    expect(collectBootGarbage({ NODEREL_GC_AFTER_BOOT: '0' })).toBeUndefined();
    const big = collectBootGarbage({}, 1024);
    expect(big?.skipped).toMatch(/^heap of [\d.]+ MiB over 0\.0 MiB$/);
    expect(big?.heapAfter).toBe(big?.heapBefore);
    expect(describeBootGc(big!)).toMatch(/^no garbage collection after boot: heap of/);
  });
});
