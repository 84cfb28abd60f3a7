/**
 * TLS for the TCP control port (control.ts speaks the same protocol inside it). Loaded only by
 * a node whose control port has a certificate and by a client given a CA file: node:tls is not
 * part of any other process.
 *
 *   node    NODEREL_CONTROL_TLS_CERT  its certificate chain (PEM)
 *           NODEREL_CONTROL_TLS_KEY   its private key (PEM)
 *   client  NODEREL_CONTROL_TLS_CA    the CA certificate(s) (PEM) the node's certificate must chain to;
 *                                     with it, `--remote` connects with TLS and verifies the node
 *           NODEREL_CONTROL_TLS_SERVERNAME  the name the certificate must carry when it is not the
 *                                     --remote host (e.g. connecting by address to a certificate
 *                                     issued for a DNS name)
 *
 * TLS keeps the cookie-authenticated protocol as it is: the cookie still admits the client, and
 * TLS adds what the cookie alone cannot give: confidentiality, and a node the client knows by
 * its certificate before it sends anything.
 */
import { readFileSync } from 'node:fs';
import { connect, createSecureContext, createServer, type Server, type TLSSocket } from 'node:tls';
import { BootError } from '../errors.js';

/** What a node needs to serve TLS, read and checked. */
export interface TlsServerConfig {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** What a client needs to connect with TLS. */
export interface TlsClientConfig {
  readonly ca: Buffer;
  /** The CA file, for messages. */
  readonly caFile: string;
  readonly servername?: string;
}

/** The node's certificate and key from their files; a missing, unreadable or mismatched pair fails the boot. */
export function loadTlsServerConfig(certFile: string | undefined, keyFile: string | undefined): TlsServerConfig | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    const [has, lacks] = certFile === undefined ? ['KEY', 'CERT'] : ['CERT', 'KEY'];
    throw new BootError('ETLS', `NODEREL_CONTROL_TLS_${has} is set but NODEREL_CONTROL_TLS_${lacks} is not: TLS on the control port needs both the certificate and its key`);
  }
  const config = { cert: readPem(certFile, 'NODEREL_CONTROL_TLS_CERT'), key: readPem(keyFile, 'NODEREL_CONTROL_TLS_KEY') };
  try {
    createSecureContext(config);
  } catch (err) {
    throw new BootError('ETLS', `NODEREL_CONTROL_TLS_CERT (${certFile}) and NODEREL_CONTROL_TLS_KEY (${keyFile}) are not a usable pair: ${messageOf(err)}`, { cause: err });
  }
  return config;
}

/** The client's CA file (and the name to verify, when given); undefined without NODEREL_CONTROL_TLS_CA. */
export function loadTlsClientConfig(caFile: string | undefined, servername: string | undefined): TlsClientConfig | undefined {
  if (caFile === undefined) return undefined;
  const ca = readPem(caFile, 'NODEREL_CONTROL_TLS_CA');
  try {
    createSecureContext({ ca });
  } catch (err) {
    throw new BootError('ETLS', `NODEREL_CONTROL_TLS_CA (${caFile}) holds no usable CA certificate: ${messageOf(err)}`, { cause: err });
  }
  return { ca, caFile, ...(servername === undefined ? {} : { servername }) };
}

/**
 * A TLS server for the control port; `onConnection` gets each connection once its handshake is
 * done, `onRefused` each one whose handshake failed (a client without TLS, or a bad one).
 */
export function createTlsControlServer(
  config: TlsServerConfig,
  handshakeTimeoutMs: number,
  onConnection: (socket: TLSSocket) => void,
  onRefused: (err: Error, socket: TLSSocket) => void,
): Server {
  const server = createServer({ ...config, minVersion: 'TLSv1.2', handshakeTimeout: handshakeTimeoutMs }, onConnection);
  server.on('tlsClientError', onRefused);
  return server;
}

/** Connects with TLS, verifying the node's certificate against the CA and its name. */
export function connectTls(host: string, port: number, config: TlsClientConfig): TLSSocket {
  return connect({
    host,
    port,
    ca: config.ca,
    minVersion: 'TLSv1.2',
    ...(config.servername === undefined ? {} : { servername: config.servername }),
  });
}

/** A TLS failure as the client reports it: an untrusted node, or a port that does not speak TLS. */
export function describeTlsError(err: NodeJS.ErrnoException, where: string, config: TlsClientConfig): string {
  const code = err.code ?? '';
  if (code.startsWith('ERR_SSL_') || code === 'ECONNRESET') {
    return `the TLS handshake with ${where} failed (${err.message.split('\n')[0]!.replace(/^.*routines:[^:]*:/, '').replace(/:.*$/, '')}): that control port does not speak TLS (the node needs NODEREL_CONTROL_TLS_CERT and NODEREL_CONTROL_TLS_KEY), or it is not a noderel node`;
  }
  return `the certificate of the node on ${where} is not trusted: ${err.message} (${code}); it must chain to ${config.caFile} (NODEREL_CONTROL_TLS_CA) and name ${config.servername ?? 'the --remote host'}${config.servername === undefined ? ' (or set NODEREL_CONTROL_TLS_SERVERNAME)' : ''}`;
}

function readPem(file: string, variable: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new BootError('ETLS', `cannot read ${variable} (${file}): ${messageOf(err)}`, { cause: err });
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
