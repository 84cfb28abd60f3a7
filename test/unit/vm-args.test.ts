import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { NoderelError } from '../../src/errors.js';
import {
  checkVmArgFlags,
  flattenVmArgs,
  loadVmArgs,
  placeholderProblems,
  unbalancedQuote,
  varsIn,
  type FlagType,
} from '../../src/config/vm-args.js';

let project: string;
let previousCwd: string;

/** Write `files` (path relative to the project -> content) into the temp project. */
function write(files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    const abs = path.join(project, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, text);
  }
}

/** The NoderelError thrown by `fn`, with its problems joined, for message assertions. */
function failure(fn: () => unknown): { err: NoderelError; text: string } {
  const e = thrown(fn, NoderelError);
  return { err: e, text: [e.message, ...e.problems].join('\n') };
}

beforeEach(() => {
  previousCwd = process.cwd();
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-vmargs-'));
  process.chdir(project); // messages show paths relative to the working directory
});

afterEach(() => {
  process.chdir(previousCwd);
  fs.rmSync(project, { recursive: true, force: true });
});

describe('loadVmArgs', () => {
  it('reads directives, drops comments and blank lines, sorts them', () => {
    write({
      'rel/vm.args': [
        '# the node name',
        '-name kazoo_apps@${HOSTNAME}',
        '',
        '   # indented comment',
        '-setcookie change_me',
        '-env ERL_CRASH_DUMP  /var/log/kazoo dump.txt',
        '--max-old-space-size=512',
        '  --stack-size 2000  ',
        '-r ./preload.js',
      ].join('\n'),
    });
    const v = loadVmArgs('rel/vm.args');
    const file = path.join(project, 'rel/vm.args');
    expect(v.file).toBe(file);
    expect(v.lines.map((l) => [l.line, l.text])).toEqual([
      [2, '-name kazoo_apps@${HOSTNAME}'],
      [5, '-setcookie change_me'],
      [6, '-env ERL_CRASH_DUMP  /var/log/kazoo dump.txt'],
      [7, '--max-old-space-size=512'],
      [8, '--stack-size 2000'],
      [9, '-r ./preload.js'],
    ]);
    expect(v.name).toBe('kazoo_apps@${HOSTNAME}');
    expect(v.setcookie).toEqual({ file, line: 5, text: '-setcookie change_me' });
    expect(v.env).toEqual([{ key: 'ERL_CRASH_DUMP', value: '/var/log/kazoo dump.txt', at: v.lines[2] }]);
    expect(v.nodeFlags.map((l) => l.text)).toEqual(['--max-old-space-size=512', '--stack-size 2000', '-r ./preload.js']);
  });

  it('treats -sname like -name, and an empty file as no directives', () => {
    write({ 'rel/vm.args': '-sname ecallmgr\n', 'rel/empty.args': '\n# nothing\n' });
    expect(loadVmArgs('rel/vm.args').name).toBe('ecallmgr');
    const empty = loadVmArgs('rel/empty.args');
    expect(empty.lines).toEqual([]);
    expect(flattenVmArgs(empty)).toBe('');
  });

  it('inlines nested includes relative to the including file, and absolute ones', () => {
    write({
      'rel/vm.args': '-name kazoo\n-args_file extra/a.args\n--trace-warnings\n',
      'rel/extra/a.args': '--max-old-space-size=512\n-args_file ../b.args\n',
      'rel/b.args': '-env A 1\n',
      'shared/abs.args': '--stack-size=2000\n',
    });
    fs.appendFileSync(path.join(project, 'rel/b.args'), `-args_file ${path.join(project, 'shared/abs.args')}\n`);
    const v = loadVmArgs(path.join(project, 'rel/vm.args'));
    expect(v.lines.map((l) => `${path.relative(project, l.file)}:${l.line} ${l.text}`)).toEqual([
      'rel/vm.args:1 -name kazoo',
      'rel/extra/a.args:1 --max-old-space-size=512',
      'rel/b.args:1 -env A 1',
      'shared/abs.args:1 --stack-size=2000',
      'rel/vm.args:3 --trace-warnings',
    ]);
    expect(v.env.map((e) => [e.key, e.value])).toEqual([['A', '1']]);
    expect(flattenVmArgs(v)).toBe(
      [
        '# from rel/vm.args',
        '-name kazoo',
        '# from rel/extra/a.args',
        '--max-old-space-size=512',
        '# from rel/b.args',
        '-env A 1',
        '# from shared/abs.args',
        '--stack-size=2000',
        '# from rel/vm.args',
        '--trace-warnings',
        '',
      ].join('\n'),
    );
  });

  it('allows the same file to be included twice when there is no cycle', () => {
    write({ 'rel/vm.args': '-args_file common.args\n-args_file common.args\n', 'rel/common.args': '--no-warnings\n' });
    expect(loadVmArgs('rel/vm.args').nodeFlags.map((l) => l.line)).toEqual([1, 1]);
  });

  it('keeps ${VAR} verbatim in the flattened text', () => {
    write({ 'rel/vm.args': '-name ${NODE_NAME:-kazoo}\n-env HOME_DIR ${HOME_DIR}\n' });
    expect(flattenVmArgs(loadVmArgs('rel/vm.args'), () => 'vm.args')).toBe(
      '# from vm.args\n-name ${NODE_NAME:-kazoo}\n-env HOME_DIR ${HOME_DIR}\n',
    );
  });

  it('fails on a missing vm.args naming the file', () => {
    const { err, text } = failure(() => loadVmArgs('rel/vm.args'));
    expect(err.code).toBe('EVMARGS');
    expect(text).toBe('rel/vm.args: no such file');
    expect(err.hint).toMatch(/create it or fix the vm.args path/);
  });

  it('fails on a missing include with file:line and the fix', () => {
    write({ 'rel/vm.args': '-name a\n\n-args_file extra.args\n' });
    const { err, text } = failure(() => loadVmArgs('rel/vm.args'));
    expect(err.code).toBe('EVMARGS');
    expect(text).toBe(
      'rel/vm.args:3: -args_file "extra.args" not found (looked for rel/extra.args); fix the path, which is relative to the including file\'s directory',
    );
  });

  it('fails on a two-file include cycle naming the chain', () => {
    write({ 'rel/vm.args': '-name a\n--no-warnings\n-args_file extra.args\n', 'rel/extra.args': '-args_file vm.args\n' });
    const { err, text } = failure(() => loadVmArgs('rel/vm.args'));
    expect(err.code).toBe('EVMARGS');
    expect(text).toBe(
      'circular -args_file include: rel/vm.args:3 -> rel/extra.args:1 -> rel/vm.args; remove one of these -args_file lines',
    );
  });

  it('fails on a self-include', () => {
    write({ 'rel/vm.args': '-args_file ./vm.args\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(
      'circular -args_file include: rel/vm.args:1 -> rel/vm.args; remove one of these -args_file lines',
    );
  });

  it('names the whole chain for a cycle below the top file', () => {
    write({ 'rel/vm.args': '-args_file a.args\n', 'rel/a.args': '\n-args_file sub/b.args\n', 'rel/sub/b.args': '-args_file ../a.args\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toContain(
      'rel/vm.args:1 -> rel/a.args:2 -> rel/sub/b.args:1 -> rel/a.args;',
    );
  });

  it.each([
    ['-name', 'rel/vm.args:1: -name needs an argument; write -name NAME'],
    ['-sname', 'rel/vm.args:1: -sname needs an argument; write -sname NAME'],
    ['-setcookie', 'rel/vm.args:1: -setcookie needs an argument; write -setcookie COOKIE'],
    ['-env', 'rel/vm.args:1: -env needs an argument; write -env KEY VALUE'],
    ['-env ONLY_KEY', 'rel/vm.args:1: -env needs an argument; write -env KEY VALUE'],
    ['-args_file', 'rel/vm.args:1: -args_file needs an argument; write -args_file PATH'],
    ['-name a b', 'rel/vm.args:1: -name takes one argument, found 2 in "-name a b"'],
    ['-env 1BAD x', 'rel/vm.args:1: -env key "1BAD" is not a valid variable name; use letters, digits and _, not starting with a digit'],
    ['-args_file ${DIR}/x.args', 'rel/vm.args:1: -args_file "${DIR}/x.args" uses ${...}, but includes are inlined at build time; write a literal path'],
  ])('fails on %j with file:line and the fix', (line, message) => {
    write({ 'rel/vm.args': `${line}\n` });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(message);
  });

  it('fails on a line that is not a flag or directive', () => {
    write({ 'rel/vm.args': '# comment\nmax-old-space-size=512\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(
      'rel/vm.args:2: expected a flag or directive, found "max-old-space-size=512"; write Node flags as --flag[=value], or use -name, -sname, -setcookie, -env, -args_file',
    );
  });

  it('says Erlang emulator flags have no Node equivalent', () => {
    write({ 'rel/vm.args': '+K true\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(
      'rel/vm.args:1: expected a flag or directive, found "+K true"; Erlang emulator flags (+K, +P, ...) have no Node equivalent, remove it',
    );
  });

  it('fails on -name or -setcookie given twice, naming the first', () => {
    write({ 'rel/vm.args': '-name a\n-args_file more.args\n', 'rel/more.args': '-sname b\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(
      'rel/more.args:1: -sname given twice (first at rel/vm.args:1); keep one',
    );
    write({ 'rel/vm.args': '-setcookie a\n-setcookie b\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(
      'rel/vm.args:2: -setcookie given twice (first at rel/vm.args:1); keep one',
    );
  });

  it('fails on a malformed placeholder', () => {
    write({ 'rel/vm.args': '-env A ${1A}\n' });
    expect(failure(() => loadVmArgs('rel/vm.args')).text).toBe(
      'rel/vm.args:1: placeholder "${1A}" is malformed; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
    );
  });

  it('reports every problem in every file in one error', () => {
    write({
      'rel/vm.args': '-name\nbogus\n-args_file missing.args\n-args_file extra.args\n',
      'rel/extra.args': '-env\n-args_file vm.args\n',
    });
    const { err } = failure(() => loadVmArgs('rel/vm.args'));
    expect(err.code).toBe('EVMARGS');
    expect(err.message).toBe('rel/vm.args: invalid vm.args: 5 problems');
    expect(err.problems).toEqual([
      expect.stringMatching(/^rel\/vm\.args:3: -args_file "missing\.args" not found/),
      expect.stringMatching(/^circular -args_file include: rel\/vm\.args:4 -> rel\/extra\.args:2 -> rel\/vm\.args;/),
      'rel/vm.args:1: -name needs an argument; write -name NAME',
      expect.stringMatching(/^rel\/vm\.args:2: expected a flag or directive, found "bogus"/),
      'rel/extra.args:1: -env needs an argument; write -env KEY VALUE',
    ]);
  });
});

describe('checkVmArgFlags', () => {
  const known = new Set(['--max-old-space-size', '--stack-size', '-r', '--trace-warnings']);
  const isKnown = (flag: string) => known.has(flag);

  it('passes the flag name before = and before whitespace', () => {
    write({ 'rel/vm.args': '--max-old-space-size=512\n--stack-size 2000\n-r ./x.js\n-name a\n-env A B\n' });
    const seen: string[] = [];
    const problems = checkVmArgFlags(loadVmArgs('rel/vm.args'), (f) => (seen.push(f), isKnown(f)), (abs) => abs);
    expect(problems).toEqual([]);
    expect(seen).toEqual(['--max-old-space-size', '--stack-size', '-r']);
  });

  it('reports each unknown flag with file:line, the pinned runtime and where to look', () => {
    write({
      'rel/vm.args': '-name a\n--trace-warnings --frobnicate=1\n',
      'rel/extra.args': '--bogus\n',
    });
    fs.appendFileSync(path.join(project, 'rel/vm.args'), '-args_file extra.args\n');
    const v = loadVmArgs('rel/vm.args');
    expect(checkVmArgFlags(v, isKnown, (abs) => path.relative(project, abs), { nodeVersion: '22.23.3' })).toEqual([
      'rel/vm.args:2: unknown Node flag --frobnicate for the pinned runtime (node 22.23.3); see `node --help` / `node --v8-options`',
      'rel/extra.args:1: unknown Node flag --bogus for the pinned runtime (node 22.23.3); see `node --help` / `node --v8-options`',
    ]);
    expect(checkVmArgFlags(v, isKnown, (abs) => path.basename(abs))[1]).toBe(
      'extra.args:1: unknown Node flag --bogus for the pinned runtime; see `node --help` / `node --v8-options`',
    );
  });
});

// Issue 10, item 20: `--max-old-space-size=abc` passed the check and the node died with code 9.
describe('checkVmArgFlags: values by type', () => {
  const types = new Map<string, FlagType>([
    ['--max-old-space-size', 'v8:size_t'],
    ['--stack-size', 'v8:int'],
    ['--random-seed', 'v8:int'],
    ['--scavenger-max-new-space-capacity-mb', 'v8:uint'],
    ['--semi-space-growth-factor', 'v8:float'],
    ['--expose-gc', 'v8:bool'],
    ['--trace-opt', 'v8:bool'],
    ['--max-http-header-size', 'node:uint'],
    ['--heapsnapshot-near-heap-limit', 'node:int'],
    ['--require', 'node:string'],
    ['-r', 'node:string'],
    ['--title', 'node:string'],
    ['--enable-source-maps', 'node:bool'],
    ['--inspect=', 'node:string'],
    ['--inspect', 'node:bool'],
  ]);
  const known = (flag: string) => {
    const name = flag.replace(/^--no-/, '--').replace(/_/g, '-');
    return types.has(name) || flag === '--mystery';
  };
  const check = (text: string) => {
    write({ 'rel/vm.args': text });
    return checkVmArgFlags(loadVmArgs('rel/vm.args'), known, (abs) => path.relative(project, abs), { typeOf: (n) => types.get(n) });
  };

  it('passes values of the right type, in every accepted form', () => {
    expect(
      check(
        [
          '--max-old-space-size=512',
          '--max_old_space_size=+512',
          '--stack-size=-5 --random-seed=42',
          '--semi-space-growth-factor=1.5',
          '--semi-space-growth-factor=2e1',
          '--expose-gc',
          '--no-expose-gc',
          '--no-trace-opt',
          '--max-http-header-size=16384',
          '--max-http-header-size 16384',
          '--heapsnapshot-near-heap-limit=-1',
          '-r ./preload.js',
          '--require=./a.js --title my-node',
          '--enable-source-maps --inspect=127.0.0.1:9229',
          '--max-old-space-size=${HEAP_MB:-512}',
          '--mystery some-value',
          '',
        ].join('\n'),
      ),
    ).toEqual([]);
  });

  it('refuses a value of the wrong type, naming file:line, the flag, its type and the fix', () => {
    expect(check('-name a\n--max-old-space-size=abc\n--stack-size=1.5\n--scavenger-max-new-space-capacity-mb=-1\n--semi-space-growth-factor=fast\n')).toEqual([
      'rel/vm.args:2: --max-old-space-size=abc: the value of --max-old-space-size must be a whole number >= 0 (V8 type size_t), not "abc": node would exit with code 9 at start; write --max-old-space-size=<whole number>',
      'rel/vm.args:3: --stack-size=1.5: the value of --stack-size must be a whole number (V8 type int), not "1.5": node would exit with code 9 at start; write --stack-size=<whole number>',
      'rel/vm.args:4: --scavenger-max-new-space-capacity-mb=-1: the value of --scavenger-max-new-space-capacity-mb must be a whole number >= 0 (V8 type uint), not "-1": node would exit with code 9 at start; write --scavenger-max-new-space-capacity-mb=<whole number>',
      'rel/vm.args:5: --semi-space-growth-factor=fast: the value of --semi-space-growth-factor must be a number (V8 type float), not "fast": node would exit with code 9 at start; write --semi-space-growth-factor=<number>',
    ]);
    expect(check('--max-http-header-size=abc\n--heapsnapshot-near-heap-limit 1.5\n')).toEqual([
      'rel/vm.args:1: --max-http-header-size=abc: the value of --max-http-header-size must be a whole number >= 0 (Node type uint), not "abc": node would misread it without a word (abc as 0); write --max-http-header-size=<whole number>',
      'rel/vm.args:2: --heapsnapshot-near-heap-limit 1.5: the value of --heapsnapshot-near-heap-limit must be a whole number (Node type int), not "1.5": node would misread it without a word (abc as 0); write --heapsnapshot-near-heap-limit=<whole number>',
    ]);
  });

  it('refuses the forms the runtime refuses: a V8 value after a space, a value on a boolean, --no- on a value flag, a missing value', () => {
    expect(check('--stack-size 2000\n--expose-gc=true\n--no-max-old-space-size\n--max-old-space-size\n-r\n--title --expose-gc\n--max-http-header-size=\n')).toEqual([
      'rel/vm.args:1: --stack-size 2000: V8 flags take their value after = (node would exit with code 9); write --stack-size=2000',
      'rel/vm.args:2: --expose-gc=true: --expose-gc is a boolean V8 flag and takes no value (node would exit with code 9); write --expose-gc or --no-expose-gc',
      'rel/vm.args:3: --no-max-old-space-size: --max-old-space-size takes a value, so it has no --no- form; write --max-old-space-size=<value> or remove the flag',
      'rel/vm.args:4: --max-old-space-size: V8 flags take their value after = (node would exit with code 9); write --max-old-space-size=<whole number>',
      'rel/vm.args:5: -r: -r needs a value on its line (node would take the next argument as it, or refuse to start); write -r=<value>',
      'rel/vm.args:6: --title: --title needs a value on its line (node would take the next argument as it, or refuse to start); write --title=<value>',
      'rel/vm.args:7: --max-http-header-size=: --max-http-header-size needs a value (node would refuse to start); write --max-http-header-size=<whole number>',
    ]);
  });

  it('refuses a word no flag takes (Node would run it as the program), unless the flag is of unknown type', () => {
    expect(check('--expose-gc yes\n--max-old-space-size=512 extra\n--mystery value\n--enable-source-maps ${MORE_FLAGS:-}\n')).toEqual([
      'rel/vm.args:1: "yes" in "--expose-gc yes" is not a flag and no flag before it takes a value; Node would run it as the program: remove it, or join it to its flag with =',
      'rel/vm.args:2: "extra" in "--max-old-space-size=512 extra" is not a flag and no flag before it takes a value; Node would run it as the program: remove it, or join it to its flag with =',
    ]);
  });

  it('checks nothing beyond the names without the types (a runtime whose options could not be read)', () => {
    write({ 'rel/vm.args': '--max-old-space-size=abc\n--stack-size 2000\n' });
    expect(checkVmArgFlags(loadVmArgs('rel/vm.args'), known, (abs) => abs)).toEqual([]);
  });
});

// Issue 10, item 20: `-env FOO "bar baz` was accepted.
describe('loadVmArgs: unbalanced quotes', () => {
  it('refuses a quote opened and not closed on its line, with file:line', () => {
    write({
      'rel/vm.args': '-name a\n-env FOO "bar baz\n-env OK "fine here"\n-env APOS it\'s fine\n--title=\'x y\n-env EMPTY \'\'\n',
      'rel/extra.args': "-env B 'open\n",
    });
    fs.appendFileSync(path.join(project, 'rel/vm.args'), '-args_file extra.args\n');
    const { err, text } = failure(() => loadVmArgs('rel/vm.args'));
    expect(err.code).toBe('EVMARGS');
    expect(text).toBe(
      [
        'rel/vm.args: invalid vm.args: 3 problems',
        'rel/vm.args:2: unbalanced " at column 10 in "-env FOO "bar baz"; close the quote on this line (a directive is one line) or remove it',
        'rel/vm.args:5: unbalanced \' at column 9 in "--title=\'x y"; close the quote on this line (a directive is one line) or remove it',
        'rel/extra.args:1: unbalanced \' at column 8 in "-env B \'open"; close the quote on this line (a directive is one line) or remove it',
      ].join('\n'),
    );
  });

  it('unbalancedQuote: only a quote that opens a word or a value after = counts', () => {
    expect(unbalancedQuote('-env A "x y"')).toBeUndefined();
    expect(unbalancedQuote("-env A rock'n'roll")).toBeUndefined();
    expect(unbalancedQuote('-env A 5"')).toBeUndefined();
    expect(unbalancedQuote('-env A "it\'s"')).toBeUndefined();
    expect(unbalancedQuote('-setcookie "abc')).toMatch(/^unbalanced " at column 12 /);
    expect(unbalancedQuote('--x="a b" --y="c')).toMatch(/^unbalanced " at column 15 /);
  });
});

describe('varsIn', () => {
  it('finds ${VAR} and ${VAR:-default}, skipping malformed ones and bare $', () => {
    expect(varsIn('-name ${NAME}@${HOST:-localhost} $HOME ${} ${1A} ${EMPTY:-}')).toEqual([
      { name: 'NAME', hasDefault: false },
      { name: 'HOST', hasDefault: true },
      { name: 'EMPTY', hasDefault: true },
    ]);
    expect(varsIn('no placeholders')).toEqual([]);
  });

  it('lists malformed placeholders as problems', () => {
    expect(placeholderProblems('${} ${1A} ${A-b} ${A:-${B}} ${OPEN')).toEqual([
      'placeholder "${}" is malformed; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
      'placeholder "${1A}" is malformed; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
      'placeholder "${A-b}" is malformed; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
      'placeholder "${A:-${B}" nests a placeholder, which is not supported; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
      'placeholder "${OPEN" is not closed with }; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _',
    ]);
    expect(placeholderProblems('${OK} ${OK_2:-x y} $5')).toEqual([]);
  });
});
