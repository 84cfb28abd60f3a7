/**
 * The byte stream of a stream command (`attach`, `remote_console`) after the control channel's
 * handshake: every chunk travels in a frame that carries a MAC under the session key, so that
 * a relay without the cookie can neither inject, alter, drop, reorder nor replay console input
 * or output, nor cut the stream short and pass that off as its end (control.ts has the handshake).
 *
 *   frame = length (uint32, big-endian) + payload (length bytes, at most 16 KiB) + mac (32 bytes)
 *   mac   = HMAC-SHA256(K, "<direction>:<sequence number>:" + payload)
 *
 * Each direction numbers its frames from 1 (0 was the request or the stream's ack). A frame with
 * an empty payload is the authenticated end of that direction; a connection that closes without
 * one was cut on the way, and the stream fails with an error instead of ending.
 * A frame whose MAC does not verify (or that is oversized) fails the stream at once: nothing of
 * it, nor anything after it, is delivered.
 *
 * Either end sees a plain Duplex: written bytes are framed, read bytes are verified payloads,
 * `end()` sends the end frame, and the peer's end frame ends this side too (no half-open
 * streams, as with the sockets they replace).
 */
import { Duplex } from 'node:stream';
import { constantTimeEqual, hmacSha256 } from './digest.js';

/** The largest payload one frame carries; longer writes are split. */
const MAX_FRAME_PAYLOAD = 16 * 1024;
const HEADER = 4;
const MAC = 32;

export class SealedStreamError extends Error {}

export class SealedStream extends Duplex {
  private inbox: Buffer = Buffer.alloc(0);
  private sendSeq = 1;
  private recvSeq = 1;
  private ended = false;

  /**
   * @param socket    the authenticated connection, now owned by this stream
   * @param key       the session key K
   * @param sendLabel the direction label of what this end writes ("noderel-s2c" on the server)
   * @param recvLabel the direction label of what it reads
   * @param where     the peer as errors name it
   */
  constructor(
    private readonly socket: Duplex,
    private readonly key: Buffer,
    private readonly sendLabel: string,
    private readonly recvLabel: string,
    private readonly where: string,
  ) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    const cut = (): void => {
      if (!this.ended && !this.destroyed) {
        this.destroy(new SealedStreamError(`the connection to ${where} was cut before the stream's authenticated end`));
      }
    };
    socket.on('end', cut);
    socket.on('close', () => {
      cut();
      if (!this.destroyed) this.destroy();
    });
    socket.on('error', (err: Error) => {
      if (!this.ended) this.destroy(err);
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const frames: Buffer[] = [];
    for (let off = 0; off < chunk.length; off += MAX_FRAME_PAYLOAD) {
      frames.push(this.seal(chunk.subarray(off, Math.min(off + MAX_FRAME_PAYLOAD, chunk.length))));
    }
    if (frames.length === 0) return callback();
    this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames), (err) => callback(err));
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed || !this.socket.writable) return callback();
    this.socket.end(this.seal(Buffer.alloc(0)), () => callback());
  }

  override _read(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }

  private seal(payload: Buffer): Buffer {
    const frame = Buffer.allocUnsafe(HEADER + payload.length + MAC);
    frame.writeUInt32BE(payload.length, 0);
    payload.copy(frame, HEADER);
    this.macOf(this.sendLabel, this.sendSeq++, payload).copy(frame, HEADER + payload.length);
    return frame;
  }

  private macOf(label: string, seq: number, payload: Buffer): Buffer {
    const prefix = Buffer.from(`${label}:${seq}:`);
    return hmacSha256(this.key, Buffer.concat([prefix, payload]));
  }

  private receive(chunk: Buffer): void {
    if (this.ended || this.destroyed) return;
    this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
    while (this.inbox.length >= HEADER) {
      const length = this.inbox.readUInt32BE(0);
      if (length > MAX_FRAME_PAYLOAD) return this.fail(`a frame of ${length} bytes (over ${MAX_FRAME_PAYLOAD})`);
      if (this.inbox.length < HEADER + length + MAC) return;
      const payload = this.inbox.subarray(HEADER, HEADER + length);
      const mac = this.inbox.subarray(HEADER + length, HEADER + length + MAC);
      if (!constantTimeEqual(mac, this.macOf(this.recvLabel, this.recvSeq, payload))) {
        return this.fail(`frame ${this.recvSeq} failed its MAC (changed, injected, dropped or replayed on the way)`);
      }
      this.recvSeq++;
      this.inbox = this.inbox.subarray(HEADER + length + MAC);
      if (length === 0) {
        this.ended = true;
        this.push(null);
        return;
      }
      // a copy: the payload must not pin the whole inbox buffer
      if (!this.push(Buffer.from(payload))) this.socket.pause();
    }
  }

  private fail(what: string): void {
    this.destroy(new SealedStreamError(`the stream from ${this.where} was refused: ${what}; nothing of it was used`));
  }
}
