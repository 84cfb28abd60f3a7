import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { NoderelError } from '../../src/errors.js';
import { loadSysConfig } from '../../src/config/sys-config.js';

let project: string;
let previousCwd: string;

/** Write `text` to `rel` inside the temp project; returns the relative path. */
function write(rel: string, text: string): string {
  const abs = path.join(project, rel);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, text);
  return rel;
}

/** The NoderelError thrown by `fn`, with its problems joined, for message assertions. */
function failure(fn: () => unknown): { err: NoderelError; text: string } {
  const e = thrown(fn, NoderelError);
  return { err: e, text: [e.message, ...e.problems].join('\n') };
}

beforeEach(() => {
  previousCwd = process.cwd();
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-sysconfig-'));
  process.chdir(project); // messages show paths relative to the working directory
});

afterEach(() => {
  process.chdir(previousCwd);
  fs.rmSync(project, { recursive: true, force: true });
});

describe('loadSysConfig: good files', () => {
  it('reads app -> key -> value with nested values', () => {
    const file = write(
      'rel/sys.config',
      [
        '# kazoo settings',
        'crossbar:',
        '  port: 8000',
        '  tls: false',
        '  hosts: [a.example, b.example]',
        '  db: {url: "http://localhost:5984", pool: 10, timeout: null}',
        'ecallmgr:',
        '  ratio: 0.5',
      ].join('\n'),
    );
    expect(loadSysConfig(file, { knownApps: ['crossbar', 'ecallmgr'] })).toEqual({
      isSrc: false,
      config: {
        crossbar: {
          port: 8000,
          tls: false,
          hosts: ['a.example', 'b.example'],
          db: { url: 'http://localhost:5984', pool: 10, timeout: null },
        },
        ecallmgr: { ratio: 0.5 },
      },
    });
  });

  it('reads an empty or comment-only file as {}', () => {
    expect(loadSysConfig(write('rel/sys.config', ''))).toEqual({ config: {}, isSrc: false });
    expect(loadSysConfig(write('rel/sys.config', '# nothing yet\n'))).toEqual({ config: {}, isSrc: false });
  });

  it('reads an app with every key commented out as {}', () => {
    const file = write('rel/sys.config', 'crossbar:\n  # port: 8000\necallmgr: {}\n');
    expect(loadSysConfig(file).config).toEqual({ crossbar: {}, ecallmgr: {} });
  });

  it('resolves anchors and aliases', () => {
    const file = write('rel/sys.config', 'crossbar: &common\n  log: info\necallmgr: *common\nkazoo_apps:\n  copy: *common\n');
    expect(loadSysConfig(file).config).toEqual({
      crossbar: { log: 'info' },
      ecallmgr: { log: 'info' },
      kazoo_apps: { copy: { log: 'info' } },
    });
  });

  it('keeps ${VAR} in a sys.config.src and says it is one', () => {
    const file = write('rel/sys.config.src', 'crossbar:\n  port: ${PORT:-8000}\n  home: "${HOME}/kazoo"\n  empty: ${X:-}\n');
    expect(loadSysConfig(file)).toEqual({
      isSrc: true,
      config: { crossbar: { port: '${PORT:-8000}', home: '${HOME}/kazoo', empty: '${X:-}' } },
    });
  });

  it('does not check placeholders in a plain sys.config', () => {
    const file = write('rel/sys.config', 'crossbar:\n  text: "${} is literal here"\n');
    expect(loadSysConfig(file).config).toEqual({ crossbar: { text: '${} is literal here' } });
  });

  it('accepts explicit core-schema tags', () => {
    const file = write('rel/sys.config', 'crossbar:\n  port: !!str 8000\n  n: !!int "3"\n');
    expect(loadSysConfig(file).config).toEqual({ crossbar: { port: '8000', n: 3 } });
  });
});

describe('loadSysConfig: errors', () => {
  it('fails on a missing file', () => {
    const { err, text } = failure(() => loadSysConfig('rel/sys.config'));
    expect(err.code).toBe('ESYSCONFIG');
    expect(text).toBe('rel/sys.config: no such file');
    expect(err.hint).toMatch(/create it or fix the sys.config path/);
  });

  it('reports a YAML syntax error at file:line:col with the first line of the message', () => {
    const file = write('rel/sys.config', 'crossbar:\n  port: 8000\n  hosts: [a, b\necallmgr:\n  x: 1\n');
    const { err, text } = failure(() => loadSysConfig(file));
    expect(err.code).toBe('ESYSCONFIG');
    expect(text).toMatch(/^rel\/sys\.config:4:1: Flow sequence [^\n]*; fix the YAML syntax$/);
  });

  it('reports a bad indent at its line and column', () => {
    const file = write('rel/sys.config', 'crossbar:\n  a: 1\n b: 2\n');
    expect(failure(() => loadSysConfig(file)).text).toBe(
      'rel/sys.config:3:1: All mapping items must start at the same column; fix the YAML syntax',
    );
  });

  it('reports every syntax error, each on one line', () => {
    const file = write('rel/sys.config', 'crossbar:\n  a: 1\n   b: 2\n');
    const { err } = failure(() => loadSysConfig(file));
    expect(err.message).toBe('rel/sys.config: invalid YAML: 2 problems');
    for (const p of err.problems) expect(p).toMatch(/^rel\/sys\.config:2:6: [^\n]+; fix the YAML syntax$/);
  });

  it('reports a duplicate key as a syntax error', () => {
    const file = write('rel/sys.config', 'crossbar:\n  port: 1\n  port: 2\n');
    expect(failure(() => loadSysConfig(file)).text).toBe('rel/sys.config:3:3: Map keys must be unique; fix the YAML syntax');
  });

  it.each([
    ['- crossbar\n- ecallmgr\n', 'rel/sys.config:1:1: expected a mapping of app -> key -> value, found a list'],
    ['just text\n', 'rel/sys.config:1:1: expected a mapping of app -> key -> value, found a string'],
  ])('fails when the top level is not a mapping: %j', (yaml, message) => {
    expect(failure(() => loadSysConfig(write('rel/sys.config', yaml))).text).toBe(message);
  });

  it('fails when an app value is not a mapping, naming the app and what was found', () => {
    const file = write('rel/sys.config', 'crossbar:\n  port: 8000\n\necallmgr: "fast"\n');
    const { err, text } = failure(() => loadSysConfig(file));
    expect(err.code).toBe('ESYSCONFIG');
    expect(text).toBe('rel/sys.config:4:1: ecallmgr: expected a mapping of key -> value, found a string');
  });

  it('fails on an unknown app, listing the known ones', () => {
    const file = write('rel/sys.config', 'crossbar: {}\n' + '\n'.repeat(7) + 'ecalmgr:\n  x: 1\n');
    expect(failure(() => loadSysConfig(file, { knownApps: ['ecallmgr', 'crossbar'] })).text).toBe(
      'rel/sys.config:9:1: unknown app "ecalmgr"; known: crossbar, ecallmgr',
    );
  });

  it('fails on a non-string app name', () => {
    const file = write('rel/sys.config', '42: {}\n');
    expect(failure(() => loadSysConfig(file)).text).toBe('rel/sys.config:1:1: expected an app name, found a number');
  });

  it('fails on values JSON cannot represent', () => {
    const file = write('rel/sys.config', 'crossbar:\n  big: .inf\n  blob: !!binary aGVsbG8=\n  odd: !custom x\n  ? [a, b]\n  : 1\n');
    const { err } = failure(() => loadSysConfig(file));
    expect(err.problems).toEqual([
      'rel/sys.config:2:8: Infinity cannot be written as JSON; use a finite number or a string',
      'rel/sys.config:3:9: unsupported tag !!binary; sys.config values are JSON: strings, numbers, booleans, null, lists and mappings',
      'rel/sys.config:4:8: unsupported tag !custom; sys.config values are JSON: strings, numbers, booleans, null, lists and mappings',
      'rel/sys.config:5:5: expected a key (a string), found a list',
    ]);
  });

  it('fails on malformed placeholders in a sys.config.src, at the value', () => {
    const file = write('rel/sys.config.src', 'crossbar:\n  a: ${}\n  b:\n    - ok ${GOOD:-x}\n    - "${1A}"\n');
    const { err } = failure(() => loadSysConfig(file));
    expect(err.code).toBe('ESYSCONFIG');
    expect(err.message).toBe('rel/sys.config.src: invalid sys.config: 2 problems');
    expect(err.problems).toEqual([
      'rel/sys.config.src:2:6: placeholder "${}" is malformed; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
      'rel/sys.config.src:5:7: placeholder "${1A}" is malformed; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
    ]);
  });

  it('reports every problem at once', () => {
    const file = write('rel/sys.config', 'crossbar: 1\necallmgr: [x]\nbogus:\n  k: v\n');
    const { err } = failure(() => loadSysConfig(file, { knownApps: ['crossbar', 'ecallmgr'] }));
    expect(err.message).toBe('rel/sys.config: invalid sys.config: 3 problems');
    expect(err.problems).toEqual([
      'rel/sys.config:1:1: crossbar: expected a mapping of key -> value, found a number',
      'rel/sys.config:2:1: ecallmgr: expected a mapping of key -> value, found a list',
      'rel/sys.config:3:1: unknown app "bogus"; known: crossbar, ecallmgr',
    ]);
  });
});
