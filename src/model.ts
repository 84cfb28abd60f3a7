/**
 * The shapes the build's stages share, types only: the release model (`release/model.ts` builds
 * it, with every source file the release ships already read) and the plan (`assemble/plan.ts`
 * computes it from the model without touching the disk, `release/shipped-addons.ts` swaps
 * rebuilt packages into it, `assemble/apply.ts` writes it, `archive/tar.ts` packs its units).
 * Living here, neither side imports the other for them.
 */
import type { ResolvedApp, ResolvedConfig } from './config/resolve.js';
import type { SysConfig } from './config/sys-config.js';
import type { VmArgs } from './config/vm-args.js';
import type { DependencyPackage } from './release/deps.js';
import type { Runtime } from './release/runtime.js';
import type { ManifestJson } from './contract/manifest.js';

/** A source file the release ships: where it is, its path in its tree, its release mode. */
export interface SourceFile {
  /** Relative to the tree's root (forward slashes); `''` for a single-file source. */
  readonly rel: string;
  /** Absolute path to copy from. */
  readonly from: string;
  /** 0o755 when the source is executable by anyone, else 0o644. */
  readonly mode: number;
}

/** The files of a package (an app or a dependency) that ship, and the build leftovers left out. */
export interface SourceTree {
  readonly files: readonly SourceFile[];
  /** Absolute paths of the build leftovers left out (assemble/leftovers.ts). */
  readonly omitted: readonly string[];
}

export interface ReleaseDep extends DependencyPackage {
  readonly files: SourceTree;
}

export interface ReleaseApp extends ResolvedApp {
  readonly deps: readonly ReleaseDep[];
  /** `lib/<name>-<version>` */
  readonly libDir: string;
  /** The app's own files (its package.json `files`, without rel/, the output and nested apps). */
  readonly files: SourceTree;
}

/** An overlay with its source read: each file (a directory's, or the one file), and a template's text. */
export type OverlaySource =
  | { readonly op: 'mkdir'; readonly to: string }
  | { readonly op: 'copy' | 'template'; readonly to: string; readonly files: readonly (SourceFile & { readonly text?: string })[] };

export interface Release {
  readonly config: ResolvedConfig;
  readonly name: string;
  readonly version: string;
  readonly noderelVersion: string;
  readonly runtime: Runtime;
  readonly apps: readonly ReleaseApp[];
  readonly vmArgs?: VmArgs;
  /** The text of `releases/<vsn>/vm.args`: includes inlined, `${VAR}` kept for launch time. */
  readonly vmArgsText: string;
  readonly sysConfig: SysConfig;
  readonly sysConfigSrc: boolean;
  /** Absolute `<output>/<name>`. */
  readonly releaseDir: string;
  /** `releases/<vsn>/release.json`, the manifest the runtime reads (contract/manifest.ts). */
  readonly manifest: ManifestJson;
  /** `releases/<vsn>/release.env`: what the launcher needs from the manifest (contract/release-env.ts). */
  readonly releaseEnv: string;
  /** `releases/<vsn>/config.yaml`: the final config as `noderel config` prints it. */
  readonly configYaml: string;
  /** templates/bin/launcher.sh, placeholders unfilled. */
  readonly launcherTemplate: string;
  /** The noderel runtime's bundles (`dist/runtime/*.js`) that ship as `lib/noderel-<vsn>/`. */
  readonly runtimeFiles: readonly SourceFile[];
  /** `config.overlays`, in order, with their sources read. */
  readonly overlays: readonly OverlaySource[];
}

export type Operation =
  | { readonly kind: 'copy'; readonly from: string; readonly to: string; readonly mode: number }
  | { readonly kind: 'write'; readonly to: string; readonly data: string; readonly mode: number }
  | { readonly kind: 'mkdir'; readonly to: string };

/** A package the plan ships: an app (in its `lib/` directory) or one of its dependencies. */
export interface PlannedPackage {
  /** The name it is required by (a dependency) or the app's name. */
  readonly name: string;
  /** Its path in the release (`lib/web-1.0.0/node_modules/better-sqlite3`, or `lib/web-1.0.0`). */
  readonly to: string;
  /** Where its files are copied from. */
  readonly source: string;
  /** The app that ships it, and that app's `lib/` directory. */
  readonly app: string;
  readonly libDir: string;
  /** A dependency (under node_modules), not the app itself. */
  readonly dependency: boolean;
  /** Only reachable through optional dependencies. */
  readonly optional: boolean;
}

export interface Plan {
  readonly releaseDir: string;
  /**
   * The paths (relative to the release root) this build owns: each is replaced as a whole
   * when the build is applied. Anything else under the release root (other versions, run
   * state, logs, the cookie) is left alone.
   */
  readonly units: readonly string[];
  /**
   * Directories that overlays make under bin/, lib/, releases/, tmp/ and log/ (or those
   * themselves) outside the units: made when absent, never replaced, never emptied, and not
   * packed into the tarball (what is in them is not the build's).
   */
  readonly dirs?: readonly string[];
  readonly operations: readonly Operation[];
  /** Written only when absent, so a rebuild keeps the cookie running nodes use. */
  readonly cookie: string;
  /** Source files left out as build leftovers (absolute; see leftovers.ts). */
  readonly omitted?: readonly string[];
  /** The apps and dependencies the plan ships, with their names (deepest `to` owns a file). */
  readonly packages?: readonly PlannedPackage[];
}
