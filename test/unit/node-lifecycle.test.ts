import { EventEmitter } from 'node:events';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { BootError } from '../../src/node/errors.js';
import { Lifecycle, STAGES, stageIndex, type Stage } from '../../src/node/apps/lifecycle.js';
import { DEFAULT_START_TIMEOUT_MS, manifestPath, parseManifest, selectNodeType, type Manifest } from '../../src/node/release/manifest.js';
import { DISPATCH_ORDER, installSignalHandlers, SHUTDOWN_SIGNALS, ShutdownSteps, signalRouter, type ShutdownRequest } from '../../src/node/supervision/signals.js';
import { appConfigPath, envPrefix, mergeAppConfig, substituteInConfig, substituteString } from '../../src/node/release/sys-config.js';

/** The BootError thrown by `fn`. */
function bootError(fn: () => unknown): BootError {
  return thrown(fn, BootError);
}

describe('Lifecycle: stages', () => {
  it('starts running with nothing in flight; the stages are in shutdown order', () => {
    const l = new Lifecycle();
    expect(l.stage).toBe('running');
    expect(l.inFlight).toBe(0);
    expect(STAGES).toEqual(['running', 'draining', 'rejecting', 'hanging-up', 'stopping']);
    expect(STAGES.map(stageIndex)).toEqual([0, 1, 2, 3, 4]);
  });

  it('moves forward only, telling listeners the new and the previous stage', () => {
    const l = new Lifecycle();
    const seen: [Stage, Stage][] = [];
    l.onStage((stage, previous) => seen.push([stage, previous]));
    expect(l.advance('draining')).toBe(true);
    expect(l.advance('draining')).toBe(false); // same stage: no move
    expect(l.advance('hanging-up')).toBe(true); // may skip stages
    expect(l.advance('rejecting')).toBe(false); // never back
    expect(l.advance('running')).toBe(false);
    expect(l.stage).toBe('hanging-up');
    expect(l.advance('stopping')).toBe(true);
    expect(seen).toEqual([
      ['draining', 'running'],
      ['hanging-up', 'draining'],
      ['stopping', 'hanging-up'],
    ]);
  });

  it('stops calling a listener once it unsubscribes', () => {
    const l = new Lifecycle();
    const fn = vi.fn();
    const off = l.onStage(fn);
    l.advance('draining');
    off();
    off(); // twice is harmless
    l.advance('rejecting');
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('calls every listener that was subscribed when the stage changed, even if one unsubscribes another', () => {
    const l = new Lifecycle();
    const calls: string[] = [];
    let offB = () => {};
    l.onStage(() => {
      calls.push('a');
      offB();
    });
    offB = l.onStage(() => calls.push('b'));
    l.advance('draining');
    l.advance('rejecting');
    expect(calls).toEqual(['a', 'b', 'a']);
  });

  it('hands what a listener throws to onListenerError and still runs the others', () => {
    const errors: unknown[] = [];
    const l = new Lifecycle((err) => errors.push(err));
    const boom = new Error('listener failed');
    const after = vi.fn();
    l.onStage(() => {
      throw boom;
    });
    l.onStage(after);
    expect(l.advance('draining')).toBe(true);
    expect(errors).toEqual([boom]);
    expect(after).toHaveBeenCalledWith('draining', 'running');
    expect(l.stage).toBe('draining');
  });

  it('swallows listener errors by default', () => {
    const l = new Lifecycle();
    l.onStage(() => {
      throw new Error('x');
    });
    expect(() => l.advance('draining')).not.toThrow();
  });
});

describe('Lifecycle: in-flight work', () => {
  it('counts tracked work; done() is idempotent', () => {
    const l = new Lifecycle();
    const a = l.track();
    const b = l.track();
    expect(l.inFlight).toBe(2);
    a();
    a();
    a();
    expect(l.inFlight).toBe(1);
    b();
    b();
    expect(l.inFlight).toBe(0);
  });

  it('calls onIdle each time the count drops to 0, and only then', () => {
    const l = new Lifecycle();
    const idle = vi.fn();
    l.onIdle(idle);
    const a = l.track();
    const b = l.track();
    a();
    expect(idle).not.toHaveBeenCalled();
    a(); // an extra done() of finished work must not count as the end of b
    expect(idle).not.toHaveBeenCalled();
    b();
    expect(idle).toHaveBeenCalledTimes(1);
    b();
    expect(idle).toHaveBeenCalledTimes(1);
    const c = l.track();
    c();
    expect(idle).toHaveBeenCalledTimes(2);
  });

  it('stops calling an idle listener once it unsubscribes; its errors go to onListenerError', () => {
    const errors: unknown[] = [];
    const l = new Lifecycle((err) => errors.push(err));
    const idle = vi.fn();
    const off = l.onIdle(idle);
    l.onIdle(() => {
      throw new Error('idle failed');
    });
    l.track()();
    expect(idle).toHaveBeenCalledTimes(1);
    expect(errors).toHaveLength(1);
    off();
    l.track()();
    expect(idle).toHaveBeenCalledTimes(1);
    expect(errors).toHaveLength(2);
  });

  it('keeps counting whatever the stage', () => {
    const l = new Lifecycle();
    l.advance('stopping');
    const done = l.track();
    expect(l.inFlight).toBe(1);
    done();
    expect(l.inFlight).toBe(0);
  });
});

describe('Lifecycle.view', () => {
  it('shows the live stage and count, tracks into the lifecycle, and cannot advance it', () => {
    const l = new Lifecycle();
    const v = l.view();
    expect(v.stage).toBe('running');
    const done = v.track();
    expect(l.inFlight).toBe(1);
    expect(v.inFlight).toBe(1);
    const fn = vi.fn();
    const off = v.onStage(fn);
    l.advance('rejecting');
    expect(v.stage).toBe('rejecting');
    expect(fn).toHaveBeenCalledWith('rejecting', 'running');
    off();
    l.advance('stopping');
    expect(fn).toHaveBeenCalledTimes(1);
    done();
    expect(v.inFlight).toBe(0);
    expect('advance' in v).toBe(false);
    expect('onIdle' in v).toBe(false);
  });
});

describe('ShutdownSteps', () => {
  it('moves one step per TERM: draining, rejecting, hanging-up, exit, and stays at exit', () => {
    const s = new ShutdownSteps();
    expect(s.step).toBe(0);
    const got = Array.from({ length: 5 }, () => s.receive('SIGTERM'));
    expect(got).toEqual([
      { step: 1, stage: 'draining' },
      { step: 2, stage: 'rejecting' },
      { step: 3, stage: 'hanging-up' },
      { step: 4, stage: 'exit' },
      { step: 4, stage: 'exit' },
    ]);
    expect(s.step).toBe(4);
  });

  it('treats INT like TERM, counting both together', () => {
    const s = new ShutdownSteps();
    expect(s.receive('SIGINT')).toEqual({ step: 1, stage: 'draining' });
    expect(s.receive('SIGTERM')).toEqual({ step: 2, stage: 'rejecting' });
    expect(s.receive('SIGINT')).toEqual({ step: 3, stage: 'hanging-up' });
  });

  it('jumps to step 2 (rejecting) on QUIT; TERM goes on from there', () => {
    const s = new ShutdownSteps();
    expect(s.receive('SIGQUIT')).toEqual({ step: 2, stage: 'rejecting' });
    expect(s.receive('SIGQUIT')).toEqual({ step: 2, stage: 'rejecting' });
    expect(s.receive('SIGTERM')).toEqual({ step: 3, stage: 'hanging-up' });
    expect(s.receive('SIGTERM')).toEqual({ step: 4, stage: 'exit' });
  });

  it('QUIT after draining moves to rejecting; QUIT never moves back', () => {
    const s = new ShutdownSteps();
    s.receive('SIGTERM');
    expect(s.receive('SIGQUIT')).toEqual({ step: 2, stage: 'rejecting' });
    s.receive('SIGTERM');
    expect(s.receive('SIGQUIT')).toEqual({ step: 3, stage: 'hanging-up' });
  });
});

describe('installSignalHandlers', () => {
  function install() {
    const target = new EventEmitter();
    const got: [ShutdownRequest, NodeJS.Signals][] = [];
    const remove = installSignalHandlers({ shutdown: (req, sig) => got.push([req, sig]) }, target as unknown as NodeJS.Process);
    return { target, got, remove };
  }

  it('listens to INT, TERM and QUIT and reports each with the step it asks for', () => {
    const { target, got } = install();
    expect(SHUTDOWN_SIGNALS).toEqual(['SIGINT', 'SIGTERM', 'SIGQUIT']);
    for (const s of SHUTDOWN_SIGNALS) expect(target.listenerCount(s)).toBe(1);
    target.emit('SIGTERM');
    target.emit('SIGQUIT');
    target.emit('SIGINT');
    target.emit('SIGTERM');
    expect(got).toEqual([
      [{ step: 1, stage: 'draining' }, 'SIGTERM'],
      [{ step: 2, stage: 'rejecting' }, 'SIGQUIT'],
      [{ step: 3, stage: 'hanging-up' }, 'SIGINT'],
      [{ step: 4, stage: 'exit' }, 'SIGTERM'],
    ]);
  });

  it('ignores other signals', () => {
    const { target, got } = install();
    for (const s of ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']) expect(target.listenerCount(s)).toBe(0);
    target.emit('SIGHUP');
    expect(got).toEqual([]);
  });

  it('removes only its own listeners', () => {
    const { target, got, remove } = install();
    const other = vi.fn();
    target.on('SIGTERM', other);
    remove();
    for (const s of SHUTDOWN_SIGNALS) expect(target.listenerCount(s)).toBe(s === 'SIGTERM' ? 1 : 0);
    target.emit('SIGTERM');
    expect(got).toEqual([]);
    expect(other).toHaveBeenCalledTimes(1);
  });

  it('gives each installation its own step count', () => {
    const a = install();
    a.target.emit('SIGTERM');
    a.target.emit('SIGTERM');
    const b = install();
    b.target.emit('SIGTERM');
    expect(b.got).toEqual([[{ step: 1, stage: 'draining' }, 'SIGTERM']]);
  });
});

describe('SignalRouter', () => {
  it('runs the handlers of a signal in DISPATCH_ORDER, whatever order they were registered in', () => {
    const target = new EventEmitter() as unknown as NodeJS.Process;
    const router = signalRouter(target);
    const order: string[] = [];
    router.on('SIGALRM', 'master', 'pass the level on', () => order.push('master'));
    router.on('SIGALRM', 'services', 'toggle trace', () => order.push('services'));
    router.on('SIGALRM', 'services', 'second', () => order.push('services 2'));
    expect(DISPATCH_ORDER).toEqual(['services', 'single', 'master', 'shutdown', 'worker']);
    expect(router.handlers('SIGALRM')).toEqual(['services:toggle trace', 'services:second', 'master:pass the level on']);
    expect((target as unknown as EventEmitter).listenerCount('SIGALRM')).toBe(1);
    target.emit('SIGALRM');
    expect(order).toEqual(['services', 'services 2', 'master']);
  });

  it('gives one router per target, and takes its listener off with the last handler', () => {
    const target = new EventEmitter();
    const router = signalRouter(target as unknown as NodeJS.Process);
    expect(signalRouter(target as unknown as NodeJS.Process)).toBe(router);
    const off = router.on('SIGHUP', 'single', 'reload', () => {});
    const stop = installSignalHandlers({ shutdown: () => {} }, target as unknown as NodeJS.Process);
    expect(router.handlers('SIGTERM')).toEqual(['shutdown:staged shutdown']);
    off();
    stop();
    for (const s of ['SIGHUP', ...SHUTDOWN_SIGNALS]) expect(target.listenerCount(s)).toBe(0);
  });
});

describe('sys-config: envPrefix and appConfigPath', () => {
  it.each([
    ['kazoo', 'KAZOO'],
    ['my-rel', 'MY_REL'],
    ['shop.web 2', 'SHOP_WEB_2'],
    ['a_b', 'A_B'],
  ])('envPrefix(%s) = %s', (name, prefix) => {
    expect(envPrefix(name)).toBe(prefix);
  });

  it('takes $<NAME>_APP_CONFIG when set, else <etc>/<name>/app.config', () => {
    expect(appConfigPath('my-rel', {}, '/fake/etc')).toEqual({ file: '/fake/etc/my-rel/app.config', explicit: false, envVar: 'MY_REL_APP_CONFIG' });
    expect(appConfigPath('my-rel', { MY_REL_APP_CONFIG: '/srv/app.config' }, '/fake/etc')).toEqual({
      file: '/srv/app.config',
      explicit: true,
      envVar: 'MY_REL_APP_CONFIG',
    });
    expect(appConfigPath('my-rel', { MY_REL_APP_CONFIG: '' }, '/fake/etc').explicit).toBe(false);
    expect(appConfigPath('kazoo', { KAZOO_APP_CONFIG: 'rel.config' }).file).toBe(path.resolve('rel.config'));
  });
});

describe('sys-config: substituteString', () => {
  const env = { HOST: 'db.example', EMPTY: '', PORT: '5432' };
  const sub = (text: string) => {
    const unset: string[] = [];
    return { out: substituteString(text, env, (n) => unset.push(n)), unset };
  };

  it('substitutes ${VAR}', () => {
    expect(sub('postgres://${HOST}:${PORT}/db')).toEqual({ out: 'postgres://db.example:5432/db', unset: [] });
  });

  it('uses the default when the variable is unset or empty, as sh does', () => {
    expect(sub('${MISSING:-fallback}')).toEqual({ out: 'fallback', unset: [] });
    expect(sub('${EMPTY:-fallback}')).toEqual({ out: 'fallback', unset: [] });
    expect(sub('${HOST:-fallback}')).toEqual({ out: 'db.example', unset: [] });
    expect(sub('${MISSING:-}')).toEqual({ out: '', unset: [] });
  });

  it('keeps an empty value without a default and reports each unset variable', () => {
    expect(sub('[${EMPTY}]')).toEqual({ out: '[]', unset: [] });
    expect(sub('${A}-${B}-${A}')).toEqual({ out: '--', unset: ['A', 'B', 'A'] });
  });

  it('leaves text that is not a ${NAME} reference alone', () => {
    expect(sub('$HOST ${1X} ${} $${ not closed')).toEqual({ out: '$HOST ${1X} ${} $${ not closed', unset: [] });
  });
});

describe('sys-config: substituteInConfig', () => {
  it('substitutes in every string value, nested and in lists, never in keys or other values', () => {
    const config = {
      web: { url: 'http://${HOST}:${PORT:-80}', hosts: ['${HOST}', 'b'], n: 3, on: true, none: null, '${KEY}': 'k' },
      db: { deep: { name: '${DB:-main}' } },
    };
    const copy = structuredClone(config);
    expect(substituteInConfig(config, { HOST: 'h', KEY: 'x' }, '/r/sys.config')).toEqual({
      web: { url: 'http://h:80', hosts: ['h', 'b'], n: 3, on: true, none: null, '${KEY}': 'k' },
      db: { deep: { name: 'main' } },
    });
    expect(config).toEqual(copy); // the input is not changed
  });

  it('names every unset variable and where it is, in one error', () => {
    const err = bootError(() =>
      substituteInConfig({ web: { url: '${A}', hosts: ['x', '${B}'] }, db: { deep: { n: '${C}' } } }, {}, '/r/releases/1/sys.config'),
    );
    expect(err.code).toBe('ESYSCONFIG');
    expect(err.message).toBe(
      '/r/releases/1/sys.config: environment variable not set and no default: ${A} at web.url, ${B} at web.hosts[1], ${C} at db.deep.n; set it or write ${VAR:-default}',
    );
  });
});

describe('sys-config: mergeAppConfig', () => {
  it('merges objects deeply; lists and scalars replace; new apps and keys are added', () => {
    const base = { web: { port: 80, db: { host: 'a', pool: 5 }, hosts: ['a', 'b'] }, worker: { n: 1 } };
    const override = { web: { db: { host: 'b' }, hosts: ['c'], tls: true }, extra: { k: 'v' } };
    const copyBase = structuredClone(base);
    const copyOverride = structuredClone(override);
    expect(mergeAppConfig(base, override)).toEqual({
      web: { port: 80, db: { host: 'b', pool: 5 }, hosts: ['c'], tls: true },
      worker: { n: 1 },
      extra: { k: 'v' },
    });
    expect(base).toEqual(copyBase);
    expect(override).toEqual(copyOverride);
  });

  it('replaces an object with a scalar and a scalar with an object', () => {
    expect(mergeAppConfig({ web: { db: { host: 'a' }, mode: 'x' } }, { web: { db: null, mode: { a: 1 } } })).toEqual({
      web: { db: null, mode: { a: 1 } },
    });
  });

  it('returns the base unchanged for an empty override', () => {
    expect(mergeAppConfig({ web: { a: 1 } }, {})).toEqual({ web: { a: 1 } });
  });
});

describe('manifest: parseManifest', () => {
  const root = '/opt/shop';
  const file = manifestPath(root, '2.0.0');

  function valid(): Record<string, any> {
    return {
      name: 'shop',
      version: '2.0.0',
      node_version: '22.1.0',
      noderel_version: '0.1.0',
      default_node_type: 'front',
      sys_config_src: true,
      apps: {
        web: { version: '1.2.3', dir: 'lib/web-1.2.3', type: 'program', entry: 'src/index.js', ready: { type: 'port', port: 8080 }, start_timeout_ms: 5000 },
        log: { version: '0.1.0', dir: 'lib/log-0.1.0', entry: 'index.js', ready: { type: 'output', pattern: 'ready \\d+' } },
        jobs: { version: '3.0.0', dir: 'lib/jobs-3.0.0', type: 'module', entry: 'index.js', ready: { type: 'at_once' } },
      },
      node_types: {
        front: { apps: ['web', 'log'], workers: 2, process_name: 'shop-front' },
        back: { apps: ['jobs'] },
      },
    };
  }

  function problems(raw: unknown): string {
    const err = bootError(() => parseManifest(raw, root, file));
    expect(err.code).toBe('EMANIFEST');
    expect(err.message.startsWith(`${file}: `)).toBe(true);
    return err.message.slice(file.length + 2);
  }

  it('is releases/<vsn>/release.json under the root', () => {
    expect(file).toBe('/opt/shop/releases/2.0.0/release.json');
  });

  it('reads a valid manifest, with absolute paths and defaults filled in', () => {
    const m = parseManifest(valid(), root, file);
    expect(m).toMatchObject({
      file,
      name: 'shop',
      version: '2.0.0',
      nodeVersion: '22.1.0',
      noderelVersion: '0.1.0',
      defaultNodeType: 'front',
      sysConfigSrc: true,
    });
    expect(m.apps.get('web')).toEqual({
      name: 'web',
      version: '1.2.3',
      type: 'program',
      dir: '/opt/shop/lib/web-1.2.3',
      entry: '/opt/shop/lib/web-1.2.3/src/index.js',
      ready: { type: 'port', port: 8080, host: '127.0.0.1' },
      startTimeoutMs: 5000,
      args: [],
      cwd: '.',
    });
    const log = m.apps.get('log')!;
    expect(log.type).toBe('module');
    expect(log.startTimeoutMs).toBe(DEFAULT_START_TIMEOUT_MS);
    expect(log.ready.type).toBe('output');
    expect(log.ready.type === 'output' && log.ready.pattern.test('ready 42')).toBe(true);
    expect(m.apps.get('jobs')!.ready).toEqual({ type: 'at_once' });
    expect([...m.apps.keys()]).toEqual(['web', 'log', 'jobs']);
    expect(m.nodeTypes.get('front')).toEqual({ name: 'front', apps: ['web', 'log'], workers: 2, processName: 'shop-front' });
    expect(m.nodeTypes.get('back')).toEqual({ name: 'back', apps: ['jobs'], workers: 0, processName: 'back' });
  });

  it('defaults a missing readiness to at_once and sys_config_src to false', () => {
    const raw = valid();
    delete raw.apps.web.ready;
    delete raw.sys_config_src;
    const m = parseManifest(raw, root, file);
    expect(m.apps.get('web')!.ready).toEqual({ type: 'at_once' });
    expect(m.sysConfigSrc).toBe(false);
  });

  it('reports everything wrong with a non-object, in one line', () => {
    expect(problems(null)).toBe(
      '(top): expected an object; apps: expected an object of app name -> app; node_types: expected an object of node type -> {apps, workers, process_name}; default_node_type: missing; name: missing; version: missing',
    );
    expect(problems([1])).toMatch(/^\(top\): expected an object; /);
  });

  it.each<[string, (m: Record<string, any>) => void, string]>([
    ['an app that is not an object', (m) => (m.apps.jobs = 'x'), 'apps.jobs: expected an object; node_types.back.apps[0]: unknown app "jobs"; known: web, log'],
    ['a bad app type', (m) => (m.apps.web.type = 'daemon'), 'apps.web.type: expected "module" or "program", found "daemon"'],
    ['a bad start timeout', (m) => (m.apps.web.start_timeout_ms = 0), 'apps.web.start_timeout_ms: expected a positive number, found 0'],
    ['a start timeout that is a string', (m) => (m.apps.web.start_timeout_ms = '5s'), 'apps.web.start_timeout_ms: expected a positive number, found "5s"'],
    ['a missing app dir', (m) => delete m.apps.web.dir, 'apps.web.dir: missing'],
    ['an empty entry', (m) => (m.apps.web.entry = ''), 'apps.web.entry: expected a non-empty string, found ""'],
    ['a version that is a number', (m) => (m.apps.web.version = 1), 'apps.web.version: expected a non-empty string, found 1'],
    ['a readiness that is not an object', (m) => (m.apps.web.ready = 'at_once'), 'apps.web.ready: expected {type: at_once | port | output}'],
    ['an unknown readiness type', (m) => (m.apps.web.ready = { type: 'http' }), 'apps.web.ready.type: expected "at_once", "port" or "output", found "http"'],
    ['a bad port', (m) => (m.apps.web.ready = { type: 'port', port: 70000 }), 'apps.web.ready.port: expected a TCP port, found 70000'],
    ['a missing port', (m) => (m.apps.web.ready = { type: 'port' }), 'apps.web.ready.port: expected a TCP port, found undefined'],
    ['an empty host', (m) => (m.apps.web.ready = { type: 'port', port: 80, host: '' }), 'apps.web.ready.host: expected a host name or address'],
    ['a missing pattern', (m) => (m.apps.log.ready = { type: 'output' }), 'apps.log.ready.pattern: expected a RegExp source string'],
    ['an invalid pattern', (m) => (m.apps.log.ready = { type: 'output', pattern: 'a(' }), 'apps.log.ready.pattern: Invalid regular expression: /a(/: Unterminated group'],
    ['apps that are not an object', (m) => (m.apps = ['web']), 'apps: expected an object of app name -> app; node_types.front.apps[0]: unknown app "web"; known: (none); node_types.front.apps[1]: unknown app "log"; known: (none); node_types.back.apps[0]: unknown app "jobs"; known: (none)'],
    ['no node types', (m) => (m.node_types = {}), 'node_types: expected an object of node type -> {apps, workers, process_name}'],
    ['a node type that is not an object', (m) => (m.node_types.back = ['jobs']), 'node_types.back: expected an object'],
    ['node type apps that are not a list', (m) => (m.node_types.back.apps = 'jobs'), 'node_types.back.apps: expected a list of app names'],
    ['an unknown app in a node type', (m) => (m.node_types.back.apps = ['jobs', 'mailer', 3]), 'node_types.back.apps[1]: unknown app "mailer"; known: web, log, jobs; node_types.back.apps[2]: unknown app 3; known: web, log, jobs'],
    ['bad workers', (m) => (m.node_types.front.workers = -1), 'node_types.front.workers: expected a whole number >= 0, found -1'],
    ['fractional workers', (m) => (m.node_types.front.workers = 1.5), 'node_types.front.workers: expected a whole number >= 0, found 1.5'],
    ['an empty process name', (m) => (m.node_types.front.process_name = ''), 'node_types.front.process_name: expected a non-empty string'],
    ['an unknown default node type', (m) => (m.default_node_type = 'ecallmgr'), 'default_node_type: unknown node type "ecallmgr"; known: front, back'],
    ['a missing name', (m) => delete m.name, 'name: missing'],
    ['an empty version', (m) => (m.version = ''), 'version: expected a non-empty string, found ""'],
  ])('reports %s with its key path', (_what, spoil, message) => {
    const raw = valid();
    spoil(raw);
    expect(problems(raw)).toBe(message);
  });

  it('reports several problems in one error', () => {
    const raw = valid();
    raw.apps.web.type = 'x';
    raw.node_types.front.workers = 'many';
    delete raw.version;
    expect(problems(raw)).toBe(
      'apps.web.type: expected "module" or "program", found "x"; node_types.front.workers: expected a whole number >= 0, found "many"; version: missing',
    );
  });
});

describe('manifest: selectNodeType', () => {
  const m: Manifest = parseManifest(
    {
      name: 'shop',
      version: '1',
      default_node_type: 'web',
      apps: { a: { version: '1', dir: 'lib/a-1', entry: 'i.js' } },
      node_types: { web: { apps: ['a'] }, api: { apps: ['a'], workers: 3 } },
    },
    '/r',
    '/r/releases/1/release.json',
  );

  it('picks the requested node type, or the default', () => {
    expect(selectNodeType(m, 'api')).toEqual({ name: 'api', apps: ['a'], workers: 3, processName: 'api' });
    expect(selectNodeType(m, undefined).name).toBe('web');
  });

  it('names the known node types, sorted, when the requested one is unknown', () => {
    const err = bootError(() => selectNodeType(m, 'ecallmgr'));
    expect(err.code).toBe('ENODETYPE');
    expect(err.message).toBe('unknown node type "ecallmgr"; known: api, web (set REL to one of them)');
  });
});
