/**
 * The contract between the build and the running node (src/contract) has one implementation per
 * language: TypeScript (src/contract) and sh (templates/bin/launcher.sh). One table of vm.args
 * inputs runs through both, the launcher's own functions sourced into sh, so they cannot drift;
 * release.env is read back by sh; the manifest the build writes is the one the runtime reads.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templatesDir } from '../../src/paths.js';
import { tempDir } from '../helpers/project.js';
import { parseDirective, vmArgsEntries } from '../../src/contract/vm-args.js';
import { substitute } from '../../src/contract/placeholders.js';
import { parseManifest, type ManifestJson } from '../../src/contract/manifest.js';
import { releaseEnvVars, renderReleaseEnv, shQuote } from '../../src/contract/release-env.js';

/** What a vm.args gives at launch: the node's name, Node flags, -env pairs and -setcookie. */
interface Launch {
  name: string;
  flags: string[];
  env: Record<string, string>;
  setcookie?: string;
}

interface Row {
  what: string;
  text: string;
  env?: Record<string, string>;
  expect: Launch | { error: RegExp };
}

// Every -env key starts with T_, so the sh side can list them from its environment.
const TABLE: Row[] = [
  {
    what: 'each directive',
    text: '-name web@host\n-setcookie abc\n-env T_A yes\n--max-old-space-size=128\n',
    expect: { name: 'web@host', flags: ['--max-old-space-size=128'], env: { T_A: 'yes' }, setcookie: 'abc' },
  },
  {
    what: 'comments are whole lines (indented too), blank lines skipped, lines trimmed',
    text: '# a comment\n\n   # indented comment\n\t-sname  n1 \n  --a --b  \n# from rel/vm.args\n',
    expect: { name: 'n1', flags: ['--a', '--b'], env: {} },
  },
  {
    what: 'a # inside a line is a character like any other',
    text: '--title=a#b\n-env T_F a # not a comment\n',
    expect: { name: '', flags: ['--title=a#b'], env: { T_F: 'a # not a comment' } },
  },
  {
    what: '-env VALUE is the rest of the line, inner whitespace kept; one pair of quotes around all of it goes, other quotes stay',
    text: '-env T_B "x  y"\n-env   T_C   a b  \n-env T_Q it\'s\n-env T_S \'single\'\n-env T_P "a" b "c"\n-env T_L "\n',
    expect: { name: '', flags: [], env: { T_B: 'x  y', T_C: 'a b', T_Q: "it's", T_S: 'single', T_P: '"a" b "c"', T_L: '"' } },
  },
  {
    what: 'a -setcookie or -name written in quotes loses them, as a shell would take it',
    text: '-setcookie "q"\n-name \'n2@h\'\n',
    expect: { name: 'n2@h', flags: [], env: {}, setcookie: 'q' },
  },
  {
    what: 'quotes in flags are kept as written',
    text: '--title="x"\n',
    expect: { name: '', flags: ['--title="x"'], env: {} },
  },
  {
    what: '${VAR} and ${VAR:-default} (the default also for an empty variable)',
    text: '-name ${T_NODE}@${T_HOST:-localhost}\n-env T_D ${T_EMPTY:-dflt}\n--stack-size=${T_SS:-900}\n-setcookie ${T_COOKIE}\n',
    env: { T_NODE: 'n', T_EMPTY: '', T_COOKIE: 's3cret' },
    expect: { name: 'n@localhost', flags: ['--stack-size=900'], env: { T_D: 'dflt' }, setcookie: 's3cret' },
  },
  {
    what: 'a substituted flag line is split on whitespace; an -env value may become empty',
    text: '--x ${T_MORE}\n-env T_E ${T_UNSET:-}\n',
    env: { T_MORE: '--y  --z' },
    expect: { name: '', flags: ['--x', '--y', '--z'], env: { T_E: '' } },
  },
  {
    what: 'a $ not followed by { is literal',
    text: '-env T_G $T_NOT\n',
    expect: { name: '', flags: [], env: { T_G: '$T_NOT' } },
  },
  {
    what: 'CRLF line ends',
    text: '-name crlf\r\n--a\r\n',
    expect: { name: 'crlf', flags: ['--a'], env: {} },
  },
  {
    what: 'an unset variable without a default is an error naming it',
    text: '-name ${T_MISSING}\n',
    expect: { error: /T_MISSING/ },
  },
];

/** The TypeScript side: the contract's parser, then its substitution in the values. */
function launchTs(text: string, env: Record<string, string>): Launch {
  const unset: string[] = [];
  const sub = (t: string) => substitute(t, env, (name) => unset.push(name));
  const out: Launch = { name: '', flags: [], env: {} };
  for (const entry of vmArgsEntries(text)) {
    const d = parseDirective(entry.text);
    if ('problem' in d) throw new Error(`${entry.line}: ${d.problem}`);
    if (d.kind === 'name') out.name = sub(d.value);
    else if (d.kind === 'env') out.env[d.key] = sub(d.value);
    else if (d.kind === 'setcookie') out.setcookie = sub(d.value);
    else if (d.kind === 'flags') out.flags.push(...sub(entry.text).split(/\s+/).filter(Boolean));
  }
  if (unset.length > 0) throw new Error(`not set: ${unset.join(', ')}`);
  return out;
}

const launcherText = fs.readFileSync(path.join(templatesDir, 'bin', 'launcher.sh'), 'utf8');

/** A function of the launcher, as written there. */
function shFunction(name: string): string {
  const m = new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?\\n\\}\\n`, 'm').exec(launcherText);
  if (!m) throw new Error(`launcher.sh has no function ${name}()`);
  return m[0];
}

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = tempDir('noderel-contract-');
});
afterAll(() => tmp?.cleanup());

/**
 * The sh side: the launcher's own read_vm_args (and the functions it calls) in sh, on the
 * release's vm.args; -setcookie is read, as the node reads it, from the substituted copy.
 */
function launchSh(text: string, env: Record<string, string>, i: number): Launch {
  const relDir = path.join(tmp.dir, `rel-${i}`);
  fs.mkdirSync(relDir, { recursive: true });
  fs.writeFileSync(path.join(relDir, 'vm.args'), text);
  const script = [
    'set -eu',
    ...['die', 'subst_vars', 'trim_left', 'unquote_value', 'vm_args_line', 'read_vm_args'].map(shFunction),
    `REL_DIR=${shQuote(relDir)}`,
    `read_vm_args >${shQuote(path.join(relDir, 'node.vm.args'))}`,
    `printf 'NAME=%s\\n' "$VM_NAME"`,
    'set -f',
    'for w in $NODE_FLAGS; do printf \'FLAG=%s\\n\' "$w"; done',
    'env | grep "^T_[A-Z]*=" | sort | sed "s/^/ENV=/" || true',
  ].join('\n');
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  if (r.status !== 0) throw new Error(r.stderr);
  const out: Launch = { name: '', flags: [], env: {} };
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('NAME=')) out.name = line.slice(5);
    else if (line.startsWith('FLAG=')) out.flags.push(line.slice(5));
    else if (line.startsWith('ENV=')) {
      const [k, ...v] = line.slice(4).split('=');
      if (!(k! in env)) out.env[k!] = v.join('=');
    }
  }
  const copy = fs.readFileSync(path.join(relDir, 'node.vm.args'), 'utf8');
  for (const entry of vmArgsEntries(copy)) {
    const d = parseDirective(entry.text);
    if (!('problem' in d) && d.kind === 'setcookie') out.setcookie = d.value;
  }
  return out;
}

describe('vm.args: one table, the TypeScript parser and the launcher\'s sh parser', () => {
  TABLE.forEach((row, i) => {
    it(row.what, () => {
      const env = row.env ?? {};
      if ('error' in row.expect) {
        expect(() => launchTs(row.text, env)).toThrow(row.expect.error);
        expect(() => launchSh(row.text, env, i)).toThrow(row.expect.error);
        return;
      }
      expect(launchTs(row.text, env)).toEqual(row.expect);
      expect(launchSh(row.text, env, i)).toEqual(row.expect);
    });
  });
});

const MANIFEST: ManifestJson = {
  name: 'kazoo',
  version: '4.3.0',
  node_version: '22.23.3',
  node_target: 'linux-x64',
  noderel_version: '0.1.0',
  default_node_type: 'kazoo_apps',
  sys_config_src: false,
  apps: {
    crossbar: { version: '4.3.0', dir: 'lib/crossbar-4.3.0', type: 'module', entry: 'src/app.js', ready: { type: 'at_once' }, start_timeout_ms: 60000 },
    web: { version: '1.0.0', dir: 'lib/web-1.0.0', type: 'program', entry: 'server.js', ready: { type: 'port', port: 8080, host: '127.0.0.1' }, start_timeout_ms: 5000, args: ['-p', '${PORT:-8080}'], cwd: '.' },
  },
  node_types: {
    kazoo_apps: { apps: ['crossbar'], workers: 2, process_name: "it's $HOME `x` \\ \"q\"" },
    ecallmgr: { apps: ['web'], workers: 0, process_name: 'ecallmgr' },
  },
  hooks: {},
};

describe('release.env: what the launcher needs from the manifest, read back by sh', () => {
  it('every value comes back exactly, whatever its characters', () => {
    const file = path.join(tmp.dir, 'release.env');
    fs.writeFileSync(file, renderReleaseEnv(MANIFEST));
    const vars = releaseEnvVars(MANIFEST);
    const script = `. ${shQuote(file)}\n${vars.map(([k]) => `printf '%s\\0' "$${k}"`).join('\n')}`;
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(vars.map(([, v]) => v));
    expect(Object.fromEntries(vars)).toMatchObject({
      NODE_VSN: '22.23.3',
      NODEREL_VSN: '0.1.0',
      NODE_TYPES: 'kazoo_apps ecallmgr',
      DEFAULT_NODE_TYPE: 'kazoo_apps',
    });
  });

  it('the launcher sources it and parses no JSON', () => {
    expect(launcherText).toContain('. "$REL_DIR/release.env"');
    expect(launcherText).not.toMatch(/release\.json"?\s*\)|sed .*release\.json|\bsed\b/);
  });
});

describe('release.json: the shape the build writes is the one the runtime reads', () => {
  it('parses the typed manifest, with absolute paths and defaults', () => {
    const m = parseManifest(JSON.parse(JSON.stringify(MANIFEST)), '/opt/kazoo', '/opt/kazoo/releases/4.3.0/release.json');
    expect(m.nodeVersion).toBe('22.23.3');
    expect(m.apps.get('web')).toMatchObject({ dir: '/opt/kazoo/lib/web-1.0.0', entry: '/opt/kazoo/lib/web-1.0.0/server.js', args: ['-p', '${PORT:-8080}'] });
    expect(m.nodeTypes.get('kazoo_apps')).toMatchObject({ workers: 2, apps: ['crossbar'] });
  });
});
