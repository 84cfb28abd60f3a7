/**
 * The production dependency closure of an app, as npm computes it, and where each package goes
 * inside `lib/<app>-<vsn>/` so that Node's resolution in the release finds the very copy npm
 * resolved in the project.
 *
 * The closure comes from npm's own tree (`@npmcli/arborist`'s actual tree: the installed
 * `node_modules` and the hidden lockfile), loaded at the project root: the nearest workspaces
 * root that has the app among its workspaces, else the app's own directory. Its edges give, for
 * each package, the node each dependency resolves to (workspaces, hoisting, `npm:` aliases,
 * bundled, optional and peer dependencies, `file:` and workspace links). Production edges only:
 * `dependencies`, installed `optionalDependencies` and peer dependencies, and, for an app that
 * is itself the workspaces root, its workspaces. A dependency the tree cannot resolve is looked
 * for where Node would still find it, in the `node_modules` of the directories above the root
 * (a hoisted install with no lockfile); if it is not there either, it is not installed.
 *
 * Layout (each placement is checked, not assumed): the app is at `.`; for a workspaces root app
 * each workspace is already at its own path in the app's copy. The top, `node_modules/<name>`,
 * first gets the copy npm's tree gives the app's own directory for that name (npm's hoisting),
 * when the closure needs it. Then each dependency of a shipped package P at `D` must be the copy
 * Node finds from `D` (`D/node_modules/<name>`, then each ancestor's `node_modules`, as Node's
 * lookup does). When nothing is found it goes to the top; when another copy is found first it is
 * nested under its requirer, `D/node_modules/<name>`; two different copies that need the same
 * place are an error. A placement can hide another copy from the packages below it, so the check
 * is repeated until every dependency of every shipped package resolves to its own copy. A link
 * (workspace, `file:`) ships the files of its target under the link's name, never a symlink.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Arborist from '@npmcli/arborist';
import { NoderelError } from '../errors.js';
import { displayPath } from '../reporter.js';

export interface DependencyPackage {
  /** The name the package is required by (an `npm:` alias's name, not the package's own). */
  name: string;
  version: string;
  /** Real (symlink-resolved) directory of the package. */
  source: string;
  /** Destination relative to the app's directory in the release, e.g. `node_modules/ini`. */
  dest: string;
  /** Only reachable through optional dependencies (npm's tree): the app must do without it. */
  optional?: boolean;
}

type Node = Arborist.Node;
type Edge = Arborist.Edge;

/** Loaded arborist trees by root directory; one per build, shared by its apps. */
export type DependencyTrees = Map<string, Promise<Node>>;

export function dependencyTrees(): DependencyTrees {
  return new Map();
}

let arboristClass: Promise<typeof Arborist> | undefined;

/** Arborist is loaded on first use: it is large and only the build needs it. */
function treeAt(trees: DependencyTrees, dir: string): Promise<Node> {
  let tree = trees.get(dir);
  if (!tree) {
    arboristClass ??= import('@npmcli/arborist').then((m) => m.default);
    tree = arboristClass.then((A) => new A({ path: dir }).loadActual());
    trees.set(dir, tree);
  }
  return tree;
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The arborist node of the app: its project's root, or a workspace of an ancestor workspaces root. */
async function appNode(trees: DependencyTrees, appReal: string): Promise<Node> {
  for (let dir = path.dirname(appReal); ; dir = path.dirname(dir)) {
    const pkg = readJson(path.join(dir, 'package.json'));
    if (pkg?.workspaces) {
      const tree = await treeAt(trees, dir);
      for (const ws of tree.workspaces?.values() ?? []) {
        if (realpathOr(ws) !== appReal) continue;
        for (const node of tree.inventory.values()) if (!node.isLink && node.realpath === appReal) return node;
      }
    }
    if (path.dirname(dir) === dir) break;
  }
  const tree = await treeAt(trees, appReal);
  return tree.isLink && tree.target ? tree.target : tree;
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** The deepest directory that holds both `a` and `b`. */
function commonAncestor(a: string, b: string): string {
  let dir = a;
  while (dir !== b && !b.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep)) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return dir;
}

/**
 * A dependency arborist left unresolved, found where Node would still find it: the
 * `node_modules` of the directories above the part of the disk the tree covered.
 */
async function beyondTree(trees: DependencyTrees, from: Node, name: string): Promise<Node | undefined> {
  let dir = path.dirname(commonAncestor(from.realpath, from.root.realpath));
  for (;;) {
    if (path.basename(dir) !== 'node_modules' && fs.existsSync(path.join(dir, 'node_modules', name, 'package.json'))) {
      const found = (await treeAt(trees, dir)).children.get(name);
      if (found) return found;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

const SHIPPED: ReadonlySet<string> = new Set(['prod', 'optional', 'peer', 'peerOptional', 'workspace']);

interface Dependency {
  name: string;
  node: Node;
}

interface Missing {
  name: string;
  requiredBy: Node;
  type: string;
}

/** The production dependencies of `node`, resolved to the real node of each (links followed). */
async function dependenciesOf(trees: DependencyTrees, node: Node, missing: Missing[]): Promise<Dependency[]> {
  const out: Dependency[] = [];
  // A package in both dependencies and devDependencies gets a dev edge from arborist, and is
  // still a production dependency.
  const prod = (e: Edge) => SHIPPED.has(e.type) || (e.type === 'dev' && Object.hasOwn(asRecord(node.package.dependencies), e.name));
  const edges = [...node.edgesOut.values()].filter(prod).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const edge of edges) {
    let to: Node | null | undefined = edge.to && !edge.to.dummy ? edge.to : await beyondTree(trees, node, edge.name);
    if (to?.isLink) to = to.target;
    if (!to || !fs.existsSync(to.realpath)) {
      // Not installed: optional and peer dependencies may be absent, the others may not.
      if (edge.type === 'prod' || edge.type === 'dev' || edge.type === 'workspace') missing.push({ name: edge.name, requiredBy: node, type: edge.type });
      continue;
    }
    out.push({ name: edge.name, node: to });
  }
  return out;
}

interface Placed {
  node: Node;
  /** `''` for the app itself; POSIX separators. */
  dest: string;
  /** Already in the app's own copy (the app, a workspace of a root app): not listed as a dependency. */
  present: boolean;
}

/** The `node_modules` directories Node's lookup tries from a package at `dest`, nearest first. */
function lookupDirs(dest: string): string[] {
  const parts = dest ? dest.split('/') : [];
  const out: string[] = [];
  for (let i = parts.length; i > 0; i--) {
    if (parts[i - 1] !== 'node_modules') out.push(`${parts.slice(0, i).join('/')}/node_modules`);
  }
  out.push('node_modules');
  return out;
}

const MAX_NESTING = 64;

/**
 * The closure of `start`'s dependencies (each node's, keyed by node) and the required
 * `name\0realpath` pairs; fails on the first missing dependency, before anything is placed.
 */
async function closureOf(trees: DependencyTrees, start: Node[], appName: string, who: (n: Node) => string): Promise<{ deps: Map<Node, Dependency[]>; required: Set<string> }> {
  const deps = new Map<Node, Dependency[]>();
  const missing: Missing[] = [];
  const required = new Set<string>();
  const queue = [...start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i]!;
    if (deps.has(node)) continue;
    const ds = await dependenciesOf(trees, node, missing);
    deps.set(node, ds);
    for (const d of ds) {
      required.add(`${d.name}\0${d.node.realpath}`);
      queue.push(d.node);
    }
  }
  if (missing.length) {
    const m = missing[0]!;
    const what = m.type === 'workspace' ? 'workspace package' : 'dependency';
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
    throw new NoderelError(
      'EDEPS',
      `app ${appName}: ${what} "${m.name}" (required by ${who(m.requiredBy)}) is not installed${more}; run \`npm install\` in ${displayPath(m.requiredBy.root.realpath)}`,
    );
  }
  return { deps, required };
}

/**
 * Places copies until every dependency of every shipped copy resolves to its copy, repeated
 * until it does (a nested copy can hide another from the packages below it). `check` throws
 * when a copy cannot go to `dest`.
 */
function placeUntilResolved(
  placed: Placed[],
  slots: Map<string, Placed>,
  deps: Map<Node, Dependency[]>,
  check: (dest: string, name: string, requirer: Node, dep: Node) => void,
): void {
  const resolve = (dest: string, name: string): Placed | undefined => {
    for (const dir of lookupDirs(dest)) {
      const hit = slots.get(`${dir}/${name}`);
      if (hit) return hit;
    }
    return undefined;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 0; i < placed.length; i++) {
      const requirer = placed[i]!;
      for (const dep of deps.get(requirer.node)!) {
        const hit = resolve(requirer.dest, dep.name);
        if (hit && hit.node.realpath === dep.node.realpath) continue;
        const dest = hit ? `${requirer.dest ? `${requirer.dest}/` : ''}node_modules/${dep.name}` : `node_modules/${dep.name}`;
        check(dest, dep.name, requirer.node, dep.node);
        const pl: Placed = { node: dep.node, dest, present: false };
        placed.push(pl);
        slots.set(dest, pl);
        changed = true;
      }
    }
  }
}

/** Every package the app needs at run time, with its place under the app's directory. */
export async function productionDependencies(appDir: string, appName: string, trees: DependencyTrees = dependencyTrees()): Promise<DependencyPackage[]> {
  const appReal = realpathOr(appDir);
  if (!readJson(path.join(appReal, 'package.json'))) {
    throw new NoderelError('EDEPS', `app ${appName}: ${displayPath(path.join(appDir, 'package.json'))} is not readable JSON`);
  }
  const app = await appNode(trees, appReal);
  const root = app.root;
  const who = (n: Node) => (n === app ? appName : `${n.packageName}@${n.version} (${displayPath(n.realpath)})`);

  // The packages already in the app's own copy: the app, and for a workspaces root app each
  // workspace at its path (their dependencies must resolve from there too).
  const placed: Placed[] = [{ node: app, dest: '', present: true }];
  if (app === root && root.workspaces) {
    const workspaces: Placed[] = [];
    for (const node of root.inventory.values()) {
      const rel = path.relative(appReal, node.realpath);
      if (node.isLink || node === root || !isWorkspace(root, node) || rel.startsWith('..') || path.isAbsolute(rel)) continue;
      workspaces.push({ node, dest: rel.split(path.sep).join('/'), present: true });
    }
    placed.push(...workspaces.sort((a, b) => (a.dest < b.dest ? -1 : 1)));
  }
  const slots = new Map<string, Placed>(placed.map((pl) => [pl.dest, pl]));

  const { deps, required } = await closureOf(trees, placed.map((pl) => pl.node), appName, who);

  // The top of the release's node_modules holds what npm's tree gives the app's own directory,
  // where that copy is needed: npm's hoisting, kept.
  const names = [...new Set([...required].map((k) => k.slice(0, k.indexOf('\0'))))].sort();
  for (const name of names) {
    let top = app.resolve(name);
    if (top?.isLink) top = top.target;
    if (!top || !required.has(`${name}\0${top.realpath}`) || slots.has(`node_modules/${name}`)) continue;
    const pl: Placed = { node: top, dest: `node_modules/${name}`, present: false };
    placed.push(pl);
    slots.set(pl.dest, pl);
  }

  placeUntilResolved(placed, slots, deps, (dest, name, requirer, dep) => {
    const taken = slots.get(dest);
    if (taken) {
      throw new NoderelError(
        'EDEPS',
        `app ${appName}: two copies of "${name}" (${displayPath(taken.node.realpath)} and ${displayPath(dep.realpath)}, required by ${who(requirer)}) would both go to ${dest}; deduplicate them with \`npm dedupe\` in ${displayPath(root.realpath)}`,
      );
    }
    if (dest.split('/').filter((seg) => seg === 'node_modules').length > MAX_NESTING) {
      throw new NoderelError('EDEPS', `app ${appName}: "${name}" would be nested more than ${MAX_NESTING} levels deep (${dest.slice(0, 200)}...); deduplicate the tree with \`npm dedupe\` in ${displayPath(root.realpath)}`);
    }
  });

  return placed
    .filter((p) => !p.present)
    .map((p) => ({
      name: p.dest.slice(p.dest.lastIndexOf('node_modules/') + 'node_modules/'.length),
      version: String(p.node.package.version ?? ''),
      source: p.node.realpath,
      dest: p.dest.split('/').join(path.sep),
      ...(p.node.optional ? { optional: true } : {}),
    }))
    .sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
}

function isWorkspace(root: Node, node: Node): boolean {
  for (const ws of root.workspaces?.values() ?? []) if (realpathOr(ws) === node.realpath) return true;
  return false;
}
