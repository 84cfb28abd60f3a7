/**
 * eval and the REPLs evaluate as Node's REPL does (issue 10, item 10), within a time limit that
 * synchronous code cannot escape (item 9).
 */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { asyncBody, evaluate, EvalSession, isIncompleteInput } from '../../src/node/control/evaluate.js';
import type { NodeHandle } from '../../src/node/supervision/node-types.js';

const handle = {
  info: { name: 'web@host' },
  apps: new Map([['opsapp', { port: 8080 }]]),
  config: { crossbar: { port: 8000 } },
  lifecycle: { stage: 'running' },
} as unknown as NodeHandle;

describe('evaluate (one eval)', () => {
  it('statements, then the value of the last expression', async () => {
    expect(await evaluate('const v = config.crossbar.port; v', handle)).toEqual({ text: '8000', undefined: false });
    expect(await evaluate('let a = 1\nlet b = 2\na + b', handle)).toEqual({ text: '3', undefined: false });
    expect(await evaluate('if (true) { "yes" } else { "no" }', handle)).toMatchObject({ text: 'yes' });
    expect(await evaluate('{ a: 1 }', handle)).toMatchObject({ text: '{ a: 1 }' });
    expect(await evaluate('let q = 3', handle)).toEqual({ text: 'undefined', undefined: true });
  });

  it('each eval has its own bindings: the same declaration twice is no redeclaration', async () => {
    expect((await evaluate('const v = 1; v', handle)).text).toBe('1');
    expect((await evaluate('const v = 2; v', handle)).text).toBe('2');
  });

  it('require from the working directory, and the node info, apps, config and lifecycle in scope', async () => {
    expect((await evaluate('typeof require', handle)).text).toBe('function');
    expect((await evaluate('require("os").hostname()', handle)).text).toBe(os.hostname());
    expect((await evaluate('[node.name, apps.opsapp.port, lifecycle.stage].join(" ")', handle)).text).toBe('web@host 8080 running');
    expect((await evaluate('typeof process.pid + typeof Buffer + typeof setTimeout', handle)).text).toBe('numberfunctionfunction');
  });

  it('await: the value, and declarations that persist', async () => {
    expect((await evaluate('await Promise.resolve(41) + 1', handle)).text).toBe('42');
    expect((await evaluate('const w = await Promise.resolve(7)\nw * 2', handle)).text).toBe('14');
    expect((await evaluate('const r = await Promise.resolve({ ok: true }); r.ok', handle)).text).toBe('true');
    expect((await evaluate('Promise.resolve(5)', handle)).text).toBe('5');
  });

  it('errors are errors of this realm, with their name and message', async () => {
    const err = await evaluate('nosuchthing.x', handle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ name: 'ReferenceError', message: 'nosuchthing is not defined' });
  });
});

describe('an evaluation session (a REPL)', () => {
  it('let, const, var, function and class bindings persist from one input to the next', async () => {
    const s = new EvalSession(handle);
    expect(await s.run('let q = 3')).toBeUndefined();
    expect(await s.run('q')).toBe(3);
    await s.run('const c = 4; var v = 5; function f() { return 6 }; class K {}');
    expect(await s.run('q + c + v + f() + typeof K')).toBe('18function');
    await s.run('const x = await Promise.resolve(10)');
    expect(await s.run('x + 1')).toBe(11);
  });

  it('globalThis is the node\'s: what one session puts there, the node and other sessions see; declarations stay in the session', async () => {
    const a = new EvalSession(handle);
    const b = new EvalSession(handle);
    await a.run('globalThis.evalTestMark = 42; var onlyA = 1');
    expect((globalThis as Record<string, unknown>).evalTestMark).toBe(42);
    expect(await b.run('evalTestMark')).toBe(42);
    expect(await b.run('typeof onlyA')).toBe('undefined');
    expect('onlyA' in globalThis).toBe(false);
    delete (globalThis as Record<string, unknown>).evalTestMark;
  });

  it('an endless synchronous loop stops at the time limit, and the session goes on', async () => {
    const s = new EvalSession(handle);
    await s.run('let kept = 1');
    const t0 = Date.now();
    const err = await s.run('while (true) {}', 200).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^eval timed out after 0\.2 s/);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await s.run('kept + 1')).toBe(2);
  });

  it('a promise that never settles is answered at the time limit', async () => {
    const err = await new EvalSession(handle).run('await new Promise(() => {})', 200).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^eval timed out after 0\.2 s/);
  });

  it('incomplete input is told apart from a syntax error', async () => {
    const s = new EvalSession(handle);
    const open = await s.run('function g() {').catch((e: unknown) => e);
    expect(isIncompleteInput('function g() {', open)).toBe(true);
    const bad = await s.run('1 +* 2').catch((e: unknown) => e);
    expect(isIncompleteInput('1 +* 2', bad)).toBe(false);
  });
});

describe('asyncBody (top-level await without a parser)', () => {
  it('returns the last expression; declarations become assignments', () => {
    expect(asyncBody('const a = await f(); a.b')).toEqual({ source: '(async () => {\na = await f();return (a.b\n)\n})()', names: ['a'] });
    expect(asyncBody('await f()\n  .then((x) => x)').source).toContain('return (await f()\n  .then((x) => x)\n)');
    expect(asyncBody('await f(); if (x) { y }').source).not.toContain('return');
    expect(asyncBody('await f("a;b"); `c;${d}`').source).toContain('return (`c;${d}`\n)');
  });
});
