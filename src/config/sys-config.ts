/**
 * `rel/sys.config`: a YAML mapping `app -> key -> value`, parsed and validated at
 * build time with `file:line:col` on every problem, and written into the release as JSON.
 * A `sys.config.src` may hold `${VAR}` / `${VAR:-default}` placeholders, substituted at launch.
 */
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode, Pair } from 'yaml';
import { readConfigFile } from './read-file.js';
import { Problems } from '../errors.js';
import { displayPath } from '../reporter.js';
import { placeholderProblems, varsIn } from '../contract/placeholders.js';

/** The validated sys.config: each app's section, a plain JSON-representable object. */
export type SysConfig = Record<string, Record<string, unknown>>;

/** Where a value is in a sys.config: app, key, then keys and list indexes. */
export type SysConfigPath = (string | number)[];

const CODE = 'ESYSCONFIG';

/** The explicit tags a value may carry: the YAML 1.2 core schema, all JSON-representable. */
const CORE_TAGS = new Set(
  ['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].flatMap((t) => [`tag:yaml.org,2002:${t}`, `!!${t}`]),
);

/** What the validator needs to name positions and resolve aliases. */
interface Ctx {
  file: string;
  src: string;
  doc: Document;
  lines: LineCounter;
  problems: Problems;
  isSrc: boolean;
}

/**
 * Read and validate a sys.config (YAML). An empty file (or only comments) is `{}`.
 * Every problem is reported at once as a `NoderelError` (code `ESYSCONFIG`), each as
 * `rel/sys.config:LINE:COL: message`: YAML syntax errors, a top level or an app section that
 * is not a mapping, an app not in `knownApps` (when given), a value JSON cannot represent
 * (unknown tags, binary, `.inf`/`.nan`, non-scalar keys), and in a `.src` file a malformed
 * `${...}` placeholder. `isSrc` is true when the file name ends with `.src`. An app whose
 * section is empty (`ecallmgr:` with every key commented out) is `{}`.
 */
export function loadSysConfig(
  file: string,
  opts: { knownApps?: string[] } = {},
): { config: SysConfig; isSrc: boolean; typed?: SysConfigPath[] } {
  const abs = path.resolve(file);
  const isSrc = abs.endsWith('.src');
  const lines = new LineCounter();
  const src = readConfigFile(abs, CODE, 'sys.config');
  const doc = parseDocument(src, { lineCounter: lines, prettyErrors: false, logLevel: 'error' });
  const ctx: Ctx = { file: abs, src, doc, lines, problems: new Problems(), isSrc };
  for (const err of doc.errors) {
    ctx.problems.add(at(ctx, err.pos[0]), `${firstLine(err.message)}; fix the YAML syntax`);
  }
  ctx.problems.throwIfAny(CODE, `${displayPath(abs)}: invalid YAML`);
  const config = validateTop(ctx, opts.knownApps);
  ctx.problems.throwIfAny(CODE, `${displayPath(abs)}: invalid sys.config`);
  if (!isSrc) return { config, isSrc };
  return { config, isSrc, typed: typedPlaceholders(ctx) };
}

/**
 * The paths of the plain (unquoted) scalars of a sys.config.src that hold a `${...}`: at launch,
 * their substituted text gets the type YAML gives it (`port: ${PORT}` becomes the number 8092, as
 * `port: 8092` would), while a quoted `"${PORT}"` stays a string. Aliases are followed, so a
 * value repeated through `*alias` is listed at each place it appears.
 */
function typedPlaceholders(ctx: Ctx): SysConfigPath[] {
  const out: SysConfigPath[] = [];
  const walk = (node: YamlNode | null, at: SysConfigPath, depth: number): void => {
    const n = resolve(ctx, node);
    if (n === null || depth > 100) return;
    if (isMap(n)) {
      for (const pair of n.items) {
        const key = resolve(ctx, pair.key as YamlNode | null);
        if (isScalar(key) && key.value !== null) walk(pair.value as YamlNode | null, [...at, String(key.value)], depth + 1);
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => walk(item as YamlNode | null, [...at, i], depth + 1));
    } else if (isScalar(n) && n.type === 'PLAIN' && n.tag === undefined && typeof n.value === 'string' && varsIn(n.value).length > 0) {
      out.push(at);
    }
  };
  const top = ctx.doc.contents;
  if (isMap(top)) {
    for (const pair of top.items) {
      const app = pair.key as YamlNode | null;
      if (isScalar(app) && typeof app.value === 'string') walk(pair.value as YamlNode | null, [app.value], 1);
    }
  }
  return out;
}

/** Check the top level (a mapping of app -> section) and build the config. */
function validateTop(ctx: Ctx, knownApps: string[] | undefined): SysConfig {
  const top = ctx.doc.contents;
  const config: SysConfig = {};
  if (top === null || (isScalar(top) && top.value === null)) return config;
  if (!isMap(top)) {
    ctx.problems.add(at(ctx, start(top)), `expected a mapping of app -> key -> value, found ${describe(ctx, top)}`);
    return config;
  }
  const known = knownApps ? [...knownApps].sort() : undefined;
  for (const pair of top.items) {
    const app = appName(ctx, pair, known);
    const section = appSection(ctx, pair, app);
    if (app !== undefined && section !== undefined) config[app] = section;
  }
  return config;
}

/** The app name of a top-level pair, or undefined (with a problem) when it is not usable. */
function appName(ctx: Ctx, pair: Pair, known: string[] | undefined): string | undefined {
  const key = pair.key as YamlNode | null;
  const pos = at(ctx, key ? start(key) : start(pair.value as YamlNode | null));
  if (!isScalar(key) || typeof key.value !== 'string' || key.value === '') {
    ctx.problems.add(pos, `expected an app name, found ${key ? describe(ctx, key) : 'nothing'}`);
    return undefined;
  }
  if (known && !known.includes(key.value)) {
    ctx.problems.add(pos, `unknown app "${key.value}"; known: ${known.length > 0 ? known.join(', ') : '(none)'}`);
  }
  return key.value;
}

/** An app's section: a mapping (or nothing, read as `{}`); checks every value inside. */
function appSection(ctx: Ctx, pair: Pair, app: string | undefined): Record<string, unknown> | undefined {
  const value = resolve(ctx, pair.value as YamlNode | null);
  if (value === null || (isScalar(value) && value.value === null)) return {};
  if (!isMap(value)) {
    const key = pair.key as YamlNode | null;
    const label = app === undefined ? '' : `${app}: `;
    ctx.problems.add(at(ctx, start(key ?? value)), `${label}expected a mapping of key -> value, found ${describe(ctx, value)}`);
    return undefined;
  }
  const before = ctx.problems.size;
  checkValue(ctx, value);
  return ctx.problems.size === before ? (value.toJS(ctx.doc) as Record<string, unknown>) : undefined;
}

/** Check a value tree: JSON-representable scalars and keys, known tags, well-formed `${...}`. */
function checkValue(ctx: Ctx, node: YamlNode | null): void {
  if (node === null || isAlias(node)) return; // an alias repeats an anchored node checked where it is defined
  if (!checkTag(ctx, node)) return;
  if (isMap(node)) {
    for (const pair of node.items) {
      checkKey(ctx, pair);
      checkValue(ctx, pair.value as YamlNode | null);
    }
  } else if (isSeq(node)) {
    for (const item of node.items) checkValue(ctx, item as YamlNode | null);
  } else if (isScalar(node)) {
    checkScalar(ctx, node.value, start(node));
  }
}

/** False (with a problem) when the node carries a tag outside the core schema. */
function checkTag(ctx: Ctx, node: YamlNode): boolean {
  if (node.tag === undefined || CORE_TAGS.has(node.tag)) return true;
  const written = shortTag(node.tag);
  const tagAt = ctx.src.lastIndexOf(written, start(node));
  ctx.problems.add(
    at(ctx, tagAt >= 0 ? tagAt : start(node)),
    `unsupported tag ${written}; sys.config values are JSON: strings, numbers, booleans, null, lists and mappings`,
  );
  return false;
}

function checkKey(ctx: Ctx, pair: Pair): void {
  const key = pair.key as YamlNode | null;
  if (isScalar(key) && key.value !== null && ['string', 'number', 'boolean'].includes(typeof key.value)) {
    if (typeof key.value === 'string') checkPlaceholders(ctx, key.value, start(key));
    return;
  }
  const pos = at(ctx, key ? start(key) : start(pair.value as YamlNode | null));
  ctx.problems.add(pos, `expected a key (a string), found ${key ? describe(ctx, key) : 'nothing'}`);
}

function checkScalar(ctx: Ctx, value: unknown, offset: number): void {
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'string') {
    checkPlaceholders(ctx, value, offset);
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      ctx.problems.add(at(ctx, offset), `${String(value)} cannot be written as JSON; use a finite number or a string`);
    }
  } else {
    ctx.problems.add(at(ctx, offset), `${describeValue(value)} cannot be written as JSON; use a string, number, boolean or null`);
  }
}

function checkPlaceholders(ctx: Ctx, text: string, offset: number): void {
  if (!ctx.isSrc) return;
  for (const p of placeholderProblems(text)) ctx.problems.add(at(ctx, offset), p);
}

/** Follow an alias to the node it names (a dangling alias is already a YAML error). */
function resolve(ctx: Ctx, node: YamlNode | null): YamlNode | null {
  if (!isAlias(node)) return node;
  return (node.resolve(ctx.doc) as YamlNode | undefined) ?? null;
}

/** `a string`, `a list`, ... for "found ..." in messages. */
function describe(ctx: Ctx, node: YamlNode): string {
  const n = resolve(ctx, node);
  if (n === null) return 'nothing';
  if (isMap(n)) return 'a mapping';
  if (isSeq(n)) return 'a list';
  return isScalar(n) ? describeValue(n.value) : 'an unsupported node';
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  if (value instanceof Uint8Array) return 'binary data';
  if (value instanceof Date) return 'a date';
  return `a ${typeof value}`;
}

function shortTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

function start(node: YamlNode | null): number {
  return node?.range?.[0] ?? 0;
}

/** `rel/sys.config:LINE:COL` for a source offset. */
function at(ctx: Ctx, offset: number): string {
  const { line, col } = ctx.lines.linePos(offset);
  return `${displayPath(ctx.file)}:${line}:${col}`;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!;
}
