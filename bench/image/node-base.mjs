// node bench/image/node-base.mjs BASE_LAYOUT BASE_TAG NODE_BINARY OUT_LAYOUT OUT_TAG
// The "official node image" stand-in for bench/image.sh (no Docker Hub here): the base OCI layout
// plus one gzipped tar layer holding NODE_BINARY as /usr/local/bin/node (root-owned, 0755,
// mtime 0), written as a new OCI image layout OUT_LAYOUT tagged OUT_TAG. The base's blobs are
// hard-linked (or copied), its config gets the new diff_id and a history entry.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [baseDir, baseTag, nodeBin, outDir, outTag] = process.argv.slice(2);
const blob = (dir, digest) => path.join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
const readJson = (dir, digest) => JSON.parse(fs.readFileSync(blob(dir, digest), 'utf8'));
const sha = (buf) => `sha256:${createHash('sha256').update(buf).digest('hex')}`;

const index = JSON.parse(fs.readFileSync(path.join(baseDir, 'index.json'), 'utf8'));
const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === baseTag) ?? index.manifests[0];
const manifest = readJson(baseDir, desc.digest);
const config = readJson(baseDir, manifest.config.digest);

fs.mkdirSync(path.join(outDir, 'blobs', 'sha256'), { recursive: true });
const put = (buf) => {
  const d = sha(buf);
  fs.writeFileSync(blob(outDir, d), buf);
  return d;
};
for (const l of manifest.layers) {
  try {
    fs.linkSync(blob(baseDir, l.digest), blob(outDir, l.digest));
  } catch {
    fs.copyFileSync(blob(baseDir, l.digest), blob(outDir, l.digest));
  }
}

// The layer: ./usr/local/bin/node, made by GNU tar with normalized metadata.
const stage = fs.mkdtempSync(path.join(outDir, '.stage-'));
fs.mkdirSync(path.join(stage, 'usr/local/bin'), { recursive: true });
fs.copyFileSync(nodeBin, path.join(stage, 'usr/local/bin/node'));
fs.chmodSync(path.join(stage, 'usr/local/bin/node'), 0o755);
const tar = execFileSync('tar', ['-C', stage, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--format=posix',
  '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '-cf', '-', './usr/local/bin/node'], { maxBuffer: 1 << 30 });
fs.rmSync(stage, { recursive: true, force: true });
const gz = zlib.gzipSync(tar, { level: 6 });
const layerDigest = put(gz);

const created = new Date(0).toISOString();
const newConfig = {
  ...config,
  created,
  config: { ...config.config, Cmd: ['node'] },
  rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, sha(tar)] },
  history: [...(config.history ?? []), { created, created_by: `COPY node ${execFileSync(nodeBin, ['--version']).toString().trim()} /usr/local/bin/node`, comment: 'bench/image/node-base.mjs' }],
};
const configBuf = Buffer.from(JSON.stringify(newConfig));
const newManifest = {
  ...manifest,
  config: { ...manifest.config, digest: put(configBuf), size: configBuf.length },
  layers: [...manifest.layers, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: gz.length }],
};
const manifestBuf = Buffer.from(JSON.stringify(newManifest));
const outIndex = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [{ mediaType: newManifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json', digest: put(manifestBuf), size: manifestBuf.length,
    ...(desc.platform ? { platform: desc.platform } : {}), annotations: { 'org.opencontainers.image.ref.name': outTag } }],
};
fs.writeFileSync(path.join(outDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
fs.writeFileSync(path.join(outDir, 'index.json'), JSON.stringify(outIndex));
console.log(`${layerDigest} ${gz.length}`);
