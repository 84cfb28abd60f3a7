/**
 * docs/examples/kubernetes/kazoo.yaml, the manifest docs/kubernetes.md tells users to apply, held
 * to the release it runs: the demo kazoo as the build resolves it (rel/ and apps/, through
 * src/build.ts finalConfig), the launcher's own command dispatch (templates/bin/launcher.sh), the
 * variables the launcher and the runtime (src/node) read, and the staged shutdown's steps
 * (src/node/supervision/signals.ts). Renaming a launcher command, changing an app's port or a
 * start timeout, or adding a shutdown stage makes it fail, and so does a docs page whose YAML
 * drifted from the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { finalConfig } from '../../src/build.js';
import { loadSysConfig, type SysConfig } from '../../src/config/sys-config.js';
import type { ResolvedConfig } from '../../src/config/resolve.js';
import { envPrefix } from '../../src/contract/env-names.js';
import { ShutdownSteps } from '../../src/node/supervision/signals.js';
import { templatesDir } from '../../src/paths.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const manifestFile = path.join(repo, 'docs/examples/kubernetes/kazoo.yaml');
const docsPage = path.join(repo, 'docs/kubernetes.md');
const launcherFile = path.join(templatesDir, 'bin/launcher.sh');

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown, what: string): Obj => {
  if (!isObj(v)) throw new Error(`${what}: expected a mapping, found ${JSON.stringify(v)}`);
  return v;
};
const list = (v: unknown, what: string): unknown[] => {
  if (!Array.isArray(v)) throw new Error(`${what}: expected a list, found ${JSON.stringify(v)}`);
  return v;
};
const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v === '') throw new Error(`${what}: expected a non-empty string, found ${JSON.stringify(v)}`);
  return v;
};
const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what}: expected a number, found ${JSON.stringify(v)}`);
  return v;
};

// The API groups of the kinds the example uses, and what each must hold.
const API_VERSIONS: Record<string, string> = { Secret: 'v1', ConfigMap: 'v1', Service: 'v1', Deployment: 'apps/v1' };
// metadata.name: an RFC 1123 DNS label (Deployments and Services), a DNS subdomain for the others.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Doc {
  kind: string;
  name: string;
  body: Obj;
}

interface Container {
  deployment: string;
  spec: Obj;
  pod: Obj;
  env: Map<string, Obj>;
}

/** The commands of the launcher's dispatch (`case $COMMAND in`), from its source. */
function launcherCommands(source: string): Set<string> {
  const start = source.indexOf('case $COMMAND in');
  expect(start, 'templates/bin/launcher.sh: no `case $COMMAND in` dispatch').toBeGreaterThan(0);
  const block = source.slice(start).replace(/\\\n\s*/g, ' ');
  const commands = new Set<string>();
  for (const line of block.split('\n')) {
    // the dispatch's own patterns are at 4 spaces; nested cases are deeper
    const m = /^ {4}([a-z_][a-z_ |]*)\)\s*$/.exec(line);
    if (!m) continue;
    for (const word of m[1]!.split('|')) commands.add(word.trim());
  }
  return commands;
}

/** Every `<root>/bin/<name> COMMAND` in a probe's or hook's command (argv, or a `sh -c` text). */
function launcherCalls(command: string[], launcher: string): { command: string; args: string[] }[] {
  if (command[0] === launcher) return [{ command: command[1] ?? '', args: command.slice(2) }];
  const script = command[0] === '/bin/sh' && command[1] === '-c' ? command[2] ?? '' : '';
  const calls: { command: string; args: string[] }[] = [];
  for (const part of script.split(/;|\|\||&&/)) {
    const words = part.trim().split(/\s+/);
    if (words[0] === launcher) calls.push({ command: words[1] ?? '', args: words.slice(2) });
  }
  return calls;
}

/** The port an app of the demo listens on: its sys.config `port`, else the default in its entry. */
function appPort(config: ResolvedConfig, sysConfig: SysConfig, appName: string): number {
  const fromConfig = sysConfig[appName]?.port;
  if (typeof fromConfig === 'number') return fromConfig;
  const app = config.apps.find((a) => a.name === appName)!;
  const source = fs.readFileSync(path.join(app.dir, app.entry), 'utf8');
  const m = /const DEFAULT_PORT = (\d+);/.exec(source);
  if (!m) throw new Error(`${appName}: no port in sys.config and no DEFAULT_PORT in ${app.entry}`);
  return Number(m[1]);
}

describe('docs/examples/kubernetes/kazoo.yaml against the demo release', () => {
  let config: ResolvedConfig;
  let sysConfig: SysConfig;
  let docs: Doc[];
  let containers: Container[];
  let commands: Set<string>;
  let launcherSource: string;
  let launcher: string;
  const text = fs.readFileSync(manifestFile, 'utf8');

  beforeAll(async () => {
    config = await finalConfig(repo);
    sysConfig = config.sysConfig ? loadSysConfig(config.sysConfig, { knownApps: config.apps.map((a) => a.name) }).config : {};
    launcherSource = fs.readFileSync(launcherFile, 'utf8');
    commands = launcherCommands(launcherSource);
    launcher = `/opt/${config.name}/bin/${config.name}`;

    const parsed = YAML.parseAllDocuments(text);
    for (const d of parsed) expect(d.errors.map((e) => e.message), 'YAML errors').toEqual([]);
    docs = parsed
      .map((d) => d.toJS() as unknown)
      .filter((v) => v !== null)
      .map((v, i) => {
        const body = obj(v, `document ${i + 1}`);
        return { kind: str(body.kind, `document ${i + 1}: kind`), name: str(obj(body.metadata, `document ${i + 1}: metadata`).name, `document ${i + 1}: metadata.name`), body };
      });
    containers = docs
      .filter((d) => d.kind === 'Deployment')
      .flatMap((d) => {
        const pod = obj(obj(obj(d.body.spec, `${d.name}: spec`).template, `${d.name}: spec.template`).spec, `${d.name}: spec.template.spec`);
        return list(pod.containers, `${d.name}: containers`).map((c, i) => {
          const spec = obj(c, `${d.name}: containers[${i}]`);
          const env = new Map<string, Obj>();
          for (const [j, e] of list(spec.env ?? [], `${d.name}: env`).entries()) {
            const entry = obj(e, `${d.name}: env[${j}]`);
            env.set(str(entry.name, `${d.name}: env[${j}].name`), entry);
          }
          return { deployment: d.name, spec, pod, env };
        });
      });
  });

  it('holds a Secret, a ConfigMap, and a Deployment per node type', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Deployment', 'Secret', 'Service', 'Service']);
    const types = containers.map((c) => c.env.get('REL')?.value).sort();
    expect(types).toEqual(config.nodeTypes.map((t) => t.name).sort());
  });

  it('is structurally valid for the kinds it uses', () => {
    const seen = new Set<string>();
    for (const d of docs) {
      expect(API_VERSIONS[d.kind], `${d.name}: kind ${d.kind} is not one this test knows`).toBeDefined();
      expect(d.body.apiVersion, `${d.kind} ${d.name}: apiVersion`).toBe(API_VERSIONS[d.kind]);
      expect(d.name, `${d.kind} ${d.name}: metadata.name`).toMatch(DNS_LABEL);
      expect(seen.has(`${d.kind}/${d.name}`), `${d.kind} ${d.name} twice`).toBe(false);
      seen.add(`${d.kind}/${d.name}`);
      for (const [k, v] of Object.entries(obj(d.body.metadata, d.name).labels ?? {})) {
        expect(String(v), `${d.name}: label ${k}`).toMatch(LABEL_VALUE);
      }
    }
    for (const d of docs.filter((x) => x.kind === 'Secret' || x.kind === 'ConfigMap')) {
      const data = obj(d.body.stringData ?? d.body.data, `${d.kind} ${d.name}: data`);
      for (const [k, v] of Object.entries(data)) expect(typeof v, `${d.name}: ${k}`).toBe('string');
    }
    for (const d of docs.filter((x) => x.kind === 'Deployment')) {
      const spec = obj(d.body.spec, `${d.name}: spec`);
      const matchLabels = obj(obj(spec.selector, `${d.name}: selector`).matchLabels, `${d.name}: selector.matchLabels`);
      const labels = obj(obj(obj(spec.template, `${d.name}: template`).metadata, `${d.name}: template.metadata`).labels, `${d.name}: template labels`);
      expect(Object.keys(matchLabels).length, `${d.name}: empty selector`).toBeGreaterThan(0);
      for (const [k, v] of Object.entries(matchLabels)) expect(labels[k], `${d.name}: selector ${k}=${String(v)} vs template labels`).toBe(v);
      expect(num(spec.replicas, `${d.name}: replicas`)).toBeGreaterThan(0);
    }
    for (const c of containers) {
      str(c.spec.name, `${c.deployment}: container name`);
      str(c.spec.image, `${c.deployment}: container image`);
      for (const [name, e] of c.env) {
        expect(name, `${c.deployment}: env ${name}`).toMatch(ENV_NAME);
        expect(('value' in e ? 1 : 0) + ('valueFrom' in e ? 1 : 0), `${c.deployment}: env ${name} needs value or valueFrom`).toBe(1);
      }
      const volumes = new Set(list(c.pod.volumes ?? [], `${c.deployment}: volumes`).map((v, i) => str(obj(v, `volume ${i}`).name, `volume ${i}`)));
      for (const m of list(c.spec.volumeMounts ?? [], `${c.deployment}: volumeMounts`)) {
        const mount = obj(m, `${c.deployment}: volumeMount`);
        expect(volumes.has(str(mount.name, 'volumeMount name')), `${c.deployment}: volumeMount ${String(mount.name)} has no volume`).toBe(true);
      }
    }
    // Secrets and ConfigMaps the pods name exist, with the keys they name
    for (const c of containers) {
      for (const [name, e] of c.env) {
        const ref = isObj(e.valueFrom) ? e.valueFrom.secretKeyRef : undefined;
        if (!isObj(ref)) continue;
        const secret = docs.find((d) => d.kind === 'Secret' && d.name === ref.name);
        expect(secret, `${c.deployment}: env ${name} names Secret ${String(ref.name)}`).toBeDefined();
        expect(obj(secret!.body.stringData ?? secret!.body.data, 'secret data')[str(ref.key, 'secretKeyRef.key')], `${c.deployment}: Secret key ${String(ref.key)}`).toBeDefined();
      }
      for (const v of list(c.pod.volumes ?? [], 'volumes')) {
        const cm = obj(v, 'volume').configMap;
        if (!isObj(cm)) continue;
        expect(docs.find((d) => d.kind === 'ConfigMap' && d.name === cm.name), `${c.deployment}: ConfigMap ${String(cm.name)}`).toBeDefined();
      }
    }
    // Services select the pods of a Deployment and name a port the container has
    for (const s of docs.filter((d) => d.kind === 'Service')) {
      const spec = obj(s.body.spec, `${s.name}: spec`);
      const selector = obj(spec.selector, `${s.name}: selector`);
      const target = containers.filter((c) => {
        const d = docs.find((x) => x.kind === 'Deployment' && x.name === c.deployment)!;
        const labels = obj(obj(obj(d.body.spec, '').template, '').metadata, '').labels as Obj;
        return Object.entries(selector).every(([k, v]) => labels[k] === v);
      });
      expect(target.length, `Service ${s.name} selects no Deployment's pods`).toBeGreaterThan(0);
      for (const p of list(spec.ports, `${s.name}: ports`)) {
        const port = obj(p, `${s.name}: port`);
        for (const c of target) {
          const cp = list(c.spec.ports, 'ports').map((x) => obj(x, 'port')).find((x) => x.name === port.targetPort || x.containerPort === port.targetPort);
          expect(cp, `Service ${s.name}: targetPort ${String(port.targetPort)} is no port of ${c.deployment}`).toBeDefined();
          expect(port.port, `Service ${s.name}: port`).toBe(cp!.containerPort);
        }
      }
    }
  });

  it('probes and hooks run launcher commands that exist', () => {
    // the dispatch found what it should: the commands the example and the docs use
    for (const c of ['foreground', 'ping', 'status', 'stop', 'reload', 'remote_console']) expect(commands, `launcher commands: ${[...commands].join(' ')}`).toContain(c);
    for (const c of containers) {
      const execs: [string, unknown][] = [];
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const p = c.spec[probe];
        if (isObj(p) && isObj(p.exec)) execs.push([probe, p.exec.command]);
      }
      const preStop = isObj(c.spec.lifecycle) && isObj(c.spec.lifecycle.preStop) ? c.spec.lifecycle.preStop : undefined;
      if (preStop && isObj(preStop.exec)) execs.push(['preStop', preStop.exec.command]);
      expect(execs.length, `${c.deployment}: no exec probe or hook`).toBeGreaterThan(0);
      for (const [what, raw] of execs) {
        const argv = list(raw, `${c.deployment}: ${what}`).map((w) => str(w, `${c.deployment}: ${what}`));
        const calls = launcherCalls(argv, launcher);
        expect(calls.length, `${c.deployment}: ${what} runs no ${launcher} command: ${argv.join(' ')}`).toBeGreaterThan(0);
        for (const call of calls) expect(commands.has(call.command), `${c.deployment}: ${what}: "${call.command}" is not a launcher command (${[...commands].join(', ')})`).toBe(true);
      }
      // liveness is the node's own answer on its control socket
      const liveness = obj(c.spec.livenessProbe, `${c.deployment}: livenessProbe`);
      expect(list(obj(liveness.exec, 'livenessProbe.exec').command, 'command')).toEqual([launcher, 'ping']);
    }
  });

  it("exposes the ports the node type's apps listen on, and probes their /health", () => {
    for (const c of containers) {
      const type = config.nodeTypes.find((t) => t.name === c.env.get('REL')?.value);
      expect(type, `${c.deployment}: REL=${String(c.env.get('REL')?.value)} is not a node type (${config.nodeTypes.map((t) => t.name).join(', ')})`).toBeDefined();
      const expected = type!.apps.map((a) => appPort(config, sysConfig, a)).sort();
      const ports = list(c.spec.ports, `${c.deployment}: ports`).map((p) => obj(p, 'port'));
      expect(ports.map((p) => p.containerPort).sort(), `${c.deployment}: containerPorts vs the ports of ${type!.apps.join(', ')}`).toEqual(expected);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const p = c.spec[probe];
        if (!isObj(p) || !isObj(p.httpGet)) continue;
        const httpGet = p.httpGet;
        const port = ports.find((x) => x.name === httpGet.port || x.containerPort === httpGet.port);
        expect(port, `${c.deployment}: ${probe} port ${String(httpGet.port)}`).toBeDefined();
        // the path is one the app listening there answers
        const app = type!.apps.find((a) => appPort(config, sysConfig, a) === port!.containerPort)!;
        const spec = config.apps.find((a) => a.name === app)!;
        const source = fs.readFileSync(path.join(spec.dir, spec.entry), 'utf8');
        expect(source, `${c.deployment}: ${probe} path ${String(httpGet.path)} in ${app}`).toContain(`'${str(httpGet.path, 'path')}'`);
      }
    }
  });

  it('overrides sys.config only with what the pods can hold (the app.config of the ConfigMap)', () => {
    const prefix = envPrefix(config.name);
    for (const c of containers) {
      const file = c.env.get(`${prefix}_APP_CONFIG`)?.value;
      if (file === undefined) continue;
      const mounts = list(c.spec.volumeMounts, 'volumeMounts').map((m) => obj(m, 'mount'));
      const mount = mounts.find((m) => path.posix.dirname(String(file)) === m.mountPath);
      expect(mount, `${c.deployment}: ${prefix}_APP_CONFIG=${String(file)} is in no mounted directory (a subPath mount would never see an update)`).toBeDefined();
      expect(mount!.subPath, `${c.deployment}: subPath`).toBeUndefined();
      const volume = list(c.pod.volumes, 'volumes').map((v) => obj(v, 'volume')).find((v) => v.name === mount!.name)!;
      const cm = docs.find((d) => d.kind === 'ConfigMap' && d.name === obj(volume.configMap, `${c.deployment}: ${String(mount!.name)} is not a ConfigMap volume`).name)!;
      const json = JSON.parse(str(obj(cm.body.data, 'data')[path.posix.basename(String(file))], `ConfigMap ${cm.name}: ${path.posix.basename(String(file))}`)) as unknown;
      const appConfig = obj(json, `ConfigMap ${cm.name}: app.config`);
      for (const [app, section] of Object.entries(appConfig)) {
        expect(config.apps.map((a) => a.name), `app.config: unknown app ${app}`).toContain(app);
        const port = obj(section, `app.config ${app}`).port;
        if (port !== undefined) expect(port, `app.config ${app}.port vs the demo's port`).toBe(appPort(config, sysConfig, app));
      }
    }
  });

  it('uses only variables the launcher or the node reads', () => {
    const prefix = envPrefix(config.name);
    const nodeSources = fs
      .readdirSync(path.join(repo, 'src/node'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(repo, 'src/node', f), 'utf8'))
      .join('\n');
    const launchVars = new Set<string>();
    for (const file of [config.vmArgs, config.sysConfig]) {
      if (file === undefined) continue;
      for (const m of fs.readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) launchVars.add(m[1]!);
    }
    const reads = (name: string): string | undefined => {
      if (launcherSource.includes(`\${${name}:-`)) return 'the launcher';
      if (new RegExp(`\\benv(\\.${name}\\b|\\[['"]${name}['"]\\])`).test(nodeSources)) return 'src/node';
      // <NAME>_COOKIE, <NAME>_APP_CONFIG, ...: src/node builds them from the release name
      if (name.startsWith(`${prefix}_`) && nodeSources.includes(`}_${name.slice(prefix.length + 1)}\``)) return 'src/node (per release)';
      if (launchVars.has(name)) return 'vm.args or sys.config ${VAR}';
      return undefined;
    };
    for (const c of containers) {
      for (const name of c.env.keys()) expect(reads(name), `${c.deployment}: env ${name} is read by neither the launcher nor the node`).toBeDefined();
      expect(c.env.has(`${prefix}_COOKIE`), `${c.deployment}: ${prefix}_COOKIE`).toBe(true);
    }
    // the name the test derives is the one the runtime reads
    expect(reads(`${prefix}_COOKIE`)).toBe('src/node (per release)');
  });

  it('runs non-root on a read-only root, with an emptyDir at every writable directory', () => {
    for (const c of containers) {
      const pod = obj(c.pod.securityContext, `${c.deployment}: pod securityContext`);
      const sc = obj(c.spec.securityContext, `${c.deployment}: container securityContext`);
      expect(pod.runAsNonRoot).toBe(true);
      expect(pod.runAsUser, 'the image runs as 65532').toBe(65532);
      expect(sc.readOnlyRootFilesystem).toBe(true);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      // Service links would set <SERVICE>_PORT=tcp://..., which the demo apps read as their port
      expect(c.pod.enableServiceLinks, `${c.deployment}: enableServiceLinks`).toBe(false);
      const mounts = list(c.spec.volumeMounts, 'volumeMounts').map((m) => obj(m, 'mount'));
      const volumes = list(c.pod.volumes, 'volumes').map((v) => obj(v, 'volume'));
      for (const name of ['RELEASE_TMP', 'RUNNER_LOG_DIR']) {
        const dir = str(c.env.get(name)?.value, `${c.deployment}: env ${name}`);
        const mount = mounts.find((m) => m.mountPath === dir);
        expect(mount, `${c.deployment}: nothing mounted at ${name}=${dir}`).toBeDefined();
        expect(volumes.find((v) => v.name === mount!.name)?.emptyDir, `${c.deployment}: ${dir} is not an emptyDir`).toBeDefined();
        expect(mount!.readOnly, `${c.deployment}: ${dir} read-only`).not.toBe(true);
      }
    }
  });

  it("gives the node time to start and to go through the staged shutdown before Kubernetes kills it", () => {
    // How many stop requests (or TERMs) move the node through its stages before the one that
    // exits at once.
    const steps = new ShutdownSteps();
    let stages = 0;
    while (steps.receive('SIGTERM').stage !== 'exit') stages++;
    expect(stages).toBe(3);
    for (const c of containers) {
      const type = config.nodeTypes.find((t) => t.name === c.env.get('REL')?.value)!;
      // startup: Kubernetes waits at least as long as the node gives its apps to start
      const startup = obj(c.spec.startupProbe, `${c.deployment}: startupProbe`);
      const window = num(startup.initialDelaySeconds ?? 0, 'initialDelaySeconds') + num(startup.periodSeconds ?? 10, 'periodSeconds') * num(startup.failureThreshold ?? 3, 'failureThreshold');
      const startTimeoutS = Math.max(...type.apps.map((a) => config.apps.find((x) => x.name === a)!.startTimeoutMs)) / 1000;
      expect(window, `${c.deployment}: startupProbe window vs the apps' start_timeout (${startTimeoutS} s)`).toBeGreaterThan(startTimeoutS);

      // shutdown: preStop waits, then asks for each stage with a time limit; the kubelet's TERM
      // after it is the last step (exit at once); KILL only after terminationGracePeriodSeconds
      const preStop = obj(obj(c.spec.lifecycle, 'lifecycle').preStop, `${c.deployment}: preStop`);
      const argv = list(obj(preStop.exec, 'preStop.exec').command, 'command').map((w) => String(w));
      const script = argv[2] ?? '';
      const sleep = Number(/^sleep (\d+);/.exec(script)?.[1] ?? 0);
      const stops = launcherCalls(argv, launcher).filter((call) => call.command === 'stop');
      expect(stops.length, `${c.deployment}: preStop asks for ${stops.length} stages, the node has ${stages} before exit`).toBe(stages);
      const budget = stops.reduce((sum, s) => {
        const i = s.args.indexOf('--timeout');
        expect(i, `${c.deployment}: preStop stop without --timeout (default 60 s)`).toBeGreaterThanOrEqual(0);
        return sum + Number(s.args[i + 1]);
      }, sleep);
      expect(num(c.pod.terminationGracePeriodSeconds, `${c.deployment}: terminationGracePeriodSeconds`), `${c.deployment}: grace period vs preStop (${budget} s)`).toBeGreaterThan(budget);
    }
  });

  it('is the YAML docs/kubernetes.md shows', () => {
    const page = fs.readFileSync(docsPage, 'utf8');
    const blocks = [...page.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
    expect(blocks, 'docs/kubernetes.md has no ```yaml block equal to docs/examples/kubernetes/kazoo.yaml').toContain(text);
  });
});
