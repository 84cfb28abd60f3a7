/**
 * Hermetic module resolution: a package that an app of the release looks up by name (`require`
 * or `import` of a bare specifier) must come from inside the release root. Node's own search
 * walks up out of the release (`<dir>/node_modules` for every ancestor, then NODE_PATH and the
 * global folders), so a package missing from the release would still load from the project the
 * release was built in, and fail only on the target host. Here it fails everywhere the same way,
 * with an error naming the package and the app.
 *
 * How, by runtime:
 * - `module.registerHooks` (Node >= 22.15, 23.5): one synchronous resolve hook, in this thread,
 *   for `require` and `import` alike;
 * - older runtimes: CommonJS through `Module._resolveFilename`; ES modules only through
 *   `module.register`, whose hooks run in a thread of their own (about 12 MiB per process), so
 *   it is registered only where an ES module app has dependencies to look up.
 *
 * Specifiers that name a file (`./x`, `/abs/x`) or a URL (`node:fs`, `file:`, `data:`) are the
 * app's own choice and are left alone; so are built-ins.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { Module } from 'node:module';
import { isAbsolute, join, sep } from 'node:path';
import { readLaunchSettings } from '../release/launch-env.js';

export interface HermeticApp {
  readonly name: string;
  /** Absolute app directory in the release. */
  readonly dir: string;
  /** The app's code is an ES module (its entry is `.mjs`, or `.js` under `"type": "module"`). */
  readonly esm: boolean;
  /** The app's package.json declares dependencies. */
  readonly hasDependencies: boolean;
}

type ResolveResult = { url: string };
type NextResolve = (specifier: string, context?: unknown) => ResolveResult;
interface ModuleWithHooks {
  registerHooks?: (hooks: { resolve: (specifier: string, context: { parentURL?: string }, next: NextResolve) => ResolveResult }) => unknown;
  register?: (specifier: string, options?: { data?: unknown }) => void;
  _resolveFilename: (request: string, parent: { filename?: string | null } | undefined, ...rest: unknown[]) => string;
}

/** A specifier Node looks up by searching node_modules (a package name, or `#` imports). */
export function isPackageSpecifier(specifier: string): boolean {
  if (specifier.startsWith('.') || specifier.startsWith('/')) return false;
  // `node:fs`, `file:///x`, `data:...`: a scheme of two letters or more (not a Windows drive)
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(specifier)) return false;
  return !Module.isBuiltin(specifier);
}

const fileOf = (url: string | undefined): string | undefined =>
  url?.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : undefined;

const inside = (root: string, file: string): boolean => file === root || file.startsWith(`${root}${sep}`);

/** The error a lookup that left the release gets: Node's own code, the package and the app named. */
export function notInRelease(specifier: string, parent: string | undefined, found: string, apps: readonly HermeticApp[], code: string): Error {
  const app = parent === undefined ? undefined : apps.filter((a) => inside(a.dir, parent)).sort((a, b) => b.dir.length - a.dir.length)[0];
  const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
  const who = app ? `app ${app.name}` : 'the release';
  const err = new Error(
    `Cannot find package '${name}' imported from ${parent ?? 'the release'}: ${who} does not ship it `
    + `(Node found it outside the release, at ${found}, which the target host will not have); `
    + `add "${name}" to the dependencies of ${app ? `${app.name}'s package.json` : 'the app that uses it'}, npm install and rebuild the release`,
  );
  return Object.assign(err, { code });
}

let installed = false;

/** Confines package lookups of this process to `root`; once per process. */
export function containModuleResolution(root: string, apps: readonly HermeticApp[]): void {
  if (installed || !readLaunchSettings().hermetic) return;
  installed = true;
  const realRoot = realpathSync(root);
  // Node reports resolved files by their real path: compare real paths.
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  apps = apps.map((a) => ({ ...a, dir: real(a.dir) }));
  const m = Module as unknown as ModuleWithHooks;
  if (typeof m.registerHooks === 'function') {
    m.registerHooks({
      resolve(specifier, context, next) {
        const result = next(specifier, context);
        const file = isPackageSpecifier(specifier) ? fileOf(result.url) : undefined;
        if (file !== undefined && !inside(realRoot, file) && !inside(root, file)) {
          throw notInRelease(specifier, fileOf(context.parentURL), file, apps, 'ERR_MODULE_NOT_FOUND');
        }
        return result;
      },
    });
    return;
  }
  const original = m._resolveFilename;
  m._resolveFilename = function resolveFilename(this: unknown, request, parent, ...rest) {
    const file = original.call(this, request, parent, ...rest);
    if (isPackageSpecifier(request) && isAbsolute(file) && !inside(realRoot, file) && !inside(root, file)) {
      throw notInRelease(request, parent?.filename ?? undefined, file, apps, 'MODULE_NOT_FOUND');
    }
    return file;
  };
  if (typeof m.register === 'function' && apps.some((a) => a.esm && a.hasDependencies)) {
    m.register(`data:text/javascript,${encodeURIComponent(ESM_HOOKS)}`, { data: { roots: [realRoot, root], apps } });
  }
}

/** The ES module resolve hook for runtimes without registerHooks (runs in the hooks thread). */
const ESM_HOOKS = `
  const sep = '/';
  let roots = [];
  let apps = [];
  export function initialize(data) { roots = data.roots; apps = data.apps; }
  const inside = (root, file) => file === root || file.startsWith(root + sep);
  const fileOf = (url) => (url && url.startsWith('file://') ? decodeURIComponent(url.slice(7)) : undefined);
  export async function resolve(specifier, context, next) {
    const result = await next(specifier, context);
    const bare = !specifier.startsWith('.') && !specifier.startsWith('/') && !/^[A-Za-z][A-Za-z0-9+.-]+:/.test(specifier);
    const file = bare ? fileOf(result.url) : undefined;
    if (file !== undefined && !roots.some((r) => inside(r, file))) {
      const parent = fileOf(context.parentURL);
      const app = parent === undefined ? undefined : apps.filter((a) => inside(a.dir, parent)).sort((a, b) => b.dir.length - a.dir.length)[0];
      const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
      const who = app ? 'app ' + app.name : 'the release';
      const err = new Error("Cannot find package '" + name + "' imported from " + (parent || 'the release') + ': ' + who + ' does not ship it '
        + '(Node found it outside the release, at ' + file + ', which the target host will not have); '
        + 'add "' + name + '" to the dependencies of ' + (app ? app.name + "'s package.json" : 'the app that uses it') + ', npm install and rebuild the release');
      err.code = 'ERR_MODULE_NOT_FOUND';
      throw err;
    }
    return result;
  }
`;

/** The apps of a node type as the guard needs them: directory, module format, dependencies. */
export function hermeticApps(specs: readonly { name: string; dir: string; entry: string }[]): HermeticApp[] {
  return specs.map((s) => {
    let pkg: { type?: unknown; dependencies?: unknown; optionalDependencies?: unknown } = {};
    try {
      pkg = JSON.parse(readFileSync(join(s.dir, 'package.json'), 'utf8')) as typeof pkg;
    } catch {
      // no package.json: CommonJS, no dependencies
    }
    const declared = (d: unknown) => typeof d === 'object' && d !== null && Object.keys(d).length > 0;
    return {
      name: s.name,
      dir: s.dir,
      esm: s.entry.endsWith('.mjs') || (pkg.type === 'module' && !s.entry.endsWith('.cjs')),
      hasDependencies: declared(pkg.dependencies) || declared(pkg.optionalDependencies),
    };
  });
}
