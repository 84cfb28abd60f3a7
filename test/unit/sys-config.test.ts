import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { NoderelError } from '../../src/errors.js';
import { parse as parseYaml } from 'yaml';
import { loadSysConfig } from '../../src/config/sys-config.js';
import { loadSysConfig as loadAtLaunch, substituteInConfig, yamlScalar } from '../../src/node/release/sys-config.js';
import { parseManifest } from '../../src/node/release/manifest.js';
import { BootError } from '../../src/node/errors.js';

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
      typed: [['crossbar', 'port'], ['crossbar', 'empty']],
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

// Issue 10, item 21: `port: ${PORT}` in a sys.config.src used to reach the app as the string
// "8092". A substituted value now keeps the type YAML gives it, as relx's replace_os_vars does.
describe('sys.config.src: substituted values keep their YAML type', () => {
  it('lists the unquoted scalars holding a ${VAR}, in maps, lists and through aliases; quoted, tagged and block ones stay strings', () => {
    const file = write(
      'rel/sys.config.src',
      [
        'crossbar:',
        '  port: ${PORT}',
        '  quoted: "${PORT}"',
        "  single: '${PORT}'",
        '  tagged: !!str ${PORT}',
        '  url: http://${HOST}:${PORT}',
        '  hosts:',
        '    - ${A}',
        '    - b',
        '    - "${B}"',
        '  nested: &n',
        '    deep:',
        '      - on: ${DEBUG}',
        '  block: |',
        '    ${PORT}',
        '  plain: no placeholder',
        'ecallmgr:',
        '  copy: *n',
        '  1: ${ONE}',
        '',
      ].join('\n'),
    );
    expect(loadSysConfig(file).typed).toEqual([
      ['crossbar', 'port'],
      ['crossbar', 'url'],
      ['crossbar', 'hosts', 0],
      ['crossbar', 'nested', 'deep', 0, 'on'],
      ['ecallmgr', 'copy', 'deep', 0, 'on'],
      ['ecallmgr', '1'],
    ]);
    expect(loadSysConfig(write('rel/sys.config', 'crossbar:\n  port: ${PORT}\n')).typed).toBeUndefined();
  });

  it('yamlScalar resolves text as the YAML 1.2 core schema does (int, float, bool, null), else keeps the string', () => {
    const samples = [
      '8092', '0', '-0', '+12', '007', '0o17', '0x1F', '0xff', '1.5', '-.5', '+1.', '6.02e23', '1E-3', '12345678901234567890',
      'true', 'True', 'TRUE', 'false', 'False', 'FALSE', 'null', 'Null', 'NULL', '~',
      'yes', 'no', 'on', 'off', 'y', 'tRUE', 'nULL', '0b101', '1_000', '0o8', '0xZ', '1.2.3', '1e', 'e5', '.', '+',
      '12abc', 'http://h:1', '1:30', '127.0.0.1', '0x', '0o',
    ];
    for (const text of samples) expect(yamlScalar(text), text).toEqual(parseYaml(text));
    expect(yamlScalar(' 8092 ')).toBe(8092); // YAML trims a plain scalar
    expect(yamlScalar('')).toBe(''); // a variable set to nothing stays "", not null
    expect(yamlScalar('.inf')).toBe('.inf'); // sys.config values are JSON: no Infinity / NaN
    expect(yamlScalar('.nan')).toBe('.nan');
    expect(yamlScalar('  padded text ')).toBe('  padded text ');
    expect(yamlScalar('-')).toBe('-'); // (a list to a YAML parser: text here)
  });

  it('types the listed values after substitution, and only those', () => {
    const config = { web: { port: '${PORT}', quoted: '${PORT}', url: 'http://${HOST}:${PORT}', both: '${A}${B}', debug: '${DEBUG:-false}', empty: '${E:-}', list: ['${PORT}', '${PORT}'], none: '${N}' } };
    const typed = [['web', 'port'], ['web', 'url'], ['web', 'both'], ['web', 'debug'], ['web', 'empty'], ['web', 'list', 1], ['web', 'none']];
    const env = { PORT: '8092', HOST: 'h', A: '1', B: '5', N: '~' };
    expect(substituteInConfig(config, env, 'sys.config', typed)).toEqual({
      web: { port: 8092, quoted: '8092', url: 'http://h:8092', both: 15, debug: false, empty: '', list: ['8092', 8092], none: null },
    });
    // Without the list (a release built before), every value stays a string, as it was.
    expect(substituteInConfig(config, env, 'sys.config').web.port).toBe('8092');
  });

  it('end to end: the build lists the typed values, and the node gives `port: ${PORT}` to the app as a number', () => {
    const built = loadSysConfig(write('rel/sys.config.src', 'crossbar:\n  port: ${PORT}\n  name: "${PORT}"\n  debug: ${DEBUG:-false}\n'));
    const root = path.join(project, '_rel', 'r');
    fs.mkdirSync(path.join(root, 'releases', '1'), { recursive: true });
    fs.writeFileSync(path.join(root, 'releases', '1', 'sys.config'), JSON.stringify(built.config));
    const typed = JSON.parse(JSON.stringify(built.typed)) as (string | number)[][]; // as release.json carries it
    const { config } = loadAtLaunch({ root, vsn: '1', relName: 'r', substitute: true, typed, env: { PORT: '8092' }, etcDir: path.join(project, 'etc') });
    expect(config).toEqual({ crossbar: { port: 8092, name: '8092', debug: false } });
  });

  it('release.json carries the list as sys_config_typed; a malformed one is refused by the node', () => {
    const manifest = (extra: Record<string, unknown>) => ({
      name: 'r', version: '1', default_node_type: 'web', sys_config_src: true,
      apps: { web: { version: '1', dir: 'lib/web-1', entry: 'index.js' } }, node_types: { web: { apps: ['web'] } }, ...extra,
    });
    expect(parseManifest(manifest({ sys_config_typed: [['web', 'port'], ['web', 'hosts', 0]] }), '/r', '/r/release.json').sysConfigTyped).toEqual([['web', 'port'], ['web', 'hosts', 0]]);
    expect(parseManifest(manifest({}), '/r', '/r/release.json').sysConfigTyped).toEqual([]);
    const err = thrown(() => parseManifest(manifest({ sys_config_typed: ['web.port'] }), '/r', '/r/release.json'), BootError);
    expect(err.message).toBe('/r/release.json: sys_config_typed: expected a list of paths (lists of keys and indexes)');
  });
});
